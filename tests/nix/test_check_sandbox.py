"""The flake's check (pytest-nix, the devbox-ctl package's check phase) in Nix's own sandbox.

Nix 2.26 builds tests/nix/sandbox/check.nix here with `sandbox = true` (tests/nix_sandbox.py
says how, and what stands for nixpkgs' packages). The build is the whole check phase: the
whole fast suite, as the builder runs it, without root, in a copy of
the source with the store's modes, with no /usr/bin and only loopback. The probe builds show
that this sandbox refuses what a NixOS builder is refused.

Marker `sandbox`: scripts/test.sh runs these after the fast suite, on their own (the check
runs the fast suite again, on both cores). They need root (Nix builds with the nixbld users).
Inside the check's own build there is no git checkout and no root: they skip there.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nix_eval import nixpkgs_lib
from nix_sandbox import SANDBOX_DIR, Sandbox, nix_program, store_tools, write_tools
from support import REPO, require_root, require_tool

pytestmark = pytest.mark.sandbox


def checkout_files(destination: Path) -> Path:
    """The files a flake of this checkout holds: those git tracks (and new ones not ignored,
    for a tree with uncommitted work; a fresh clone has none)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout (inside the Nix build itself)")
    git = require_tool("git", shutil.which("git"))
    listed = subprocess.run(
        [git, "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file() or source.is_symlink():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    return destination


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    require_root("Nix builds in its sandbox as root, with the nixbld build users")
    try:
        grp.getgrnam("nixbld")
    except KeyError:
        pytest.fail("no nixbld group: scripts/setup.sh installs nix-setup-systemd, which adds it")
    store = Path(os.environ.get("DEVBOX_SANDBOX_STORE", str(REPO / ".tools" / "sandbox-store")))
    return Sandbox(store, nix_program())


@pytest.fixture(scope="module")
def tools(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    staging = tmp_path_factory.mktemp("staging")
    return write_tools(store_tools(sandbox, staging), staging.parent / "tools.json")


def build(sandbox: Sandbox, nix_file: Path, log: Path, **arguments: str) -> str:
    """Build in the sandbox; the output path, or the failure with the end of the log."""
    result = sandbox.build(nix_file, log, lib=f"import {nixpkgs_lib()}", **arguments)
    assert result.returncode == 0, log.read_text()[-8000:]
    return result.stdout.strip()


@pytest.fixture(scope="module")
def probe(
    sandbox: Sandbox, tools: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """What the probe build found it could and could not do (probe.sh)."""
    folder = tmp_path_factory.mktemp("probe")
    source = folder / "src"
    (source / "folder").mkdir(parents=True)
    (source / "file").write_text("a file of the source\n")
    out = build(
        sandbox,
        SANDBOX_DIR / "probe.nix",
        folder / "probe.log",
        toolsFile=str(tools),
        src=str(source),
    )
    lines = sandbox.real(out).read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines)


def test_the_source_keeps_the_stores_modes_and_a_copy_of_it_too(probe: dict[str, str]) -> None:
    assert (probe["src-file-mode"], probe["src-dir-mode"]) == ("444", "555")
    assert probe["write-store-file"] == probe["create-in-store-dir"] == "refused"
    # cp -pr keeps them: what stdenv's unpackPhase does with a source directory.
    assert probe["copied-file-mode"] == "444"
    assert probe["write-copied-file"] == probe["create-in-copied-dir"] == "refused"


def test_the_builder_is_not_root_and_has_no_capabilities(probe: dict[str, str]) -> None:
    assert probe["uid"] != "0"
    assert int(probe["effective-capabilities"], 16) == 0
    # Without CAP_DAC_OVERRIDE its own read-only file stays read-only; without CAP_CHOWN
    # nothing can be given away.
    assert probe["write-own-0400-file"] == "refused"
    assert probe["chown-to-root"] == probe["chown-to-other"] == "refused"


def test_there_is_no_usr_bin_and_bin_holds_only_sh(probe: dict[str, str]) -> None:
    assert probe["usr-bin"] == "absent"
    assert probe["bin"] == "sh"
    assert "usr" not in probe["root"].split()


def test_the_only_network_is_loopback(probe: dict[str, str]) -> None:
    assert probe["interfaces"].split() == ["lo"]


def test_home_is_the_homeless_shelter_and_tmpdir_the_build_directory(
    probe: dict[str, str],
) -> None:
    assert probe["home"] == "/homeless-shelter"
    assert probe["write-home"] == "refused"
    assert probe["tmpdir"] == probe["build-top"] == probe["cwd"] == "/build"
    assert probe["write-tmpdir"] == "allowed"


def test_the_flake_check_passes_in_nixs_sandbox(
    sandbox: Sandbox, tools: Path, tmp_path: Path
) -> None:
    """The whole check phase, as the flake's check runs it: every test of the fast suite that
    can run without root and podman runs, and all of them pass."""
    checkout = checkout_files(tmp_path / "checkout")
    out = build(
        sandbox,
        checkout / "tests/nix/sandbox/check.nix",
        tmp_path / "nix.log",
        toolsFile=str(tools),
    )
    # The build's log, as Nix keeps it: the same for a build that ran now and for one whose
    # output was already in the store (a build that failed leaves no output).
    # Nix gives the builder a terminal, so pytest writes colours: they are taken out.
    text = re.sub(r"\x1b\[[0-9;]*m", "", sandbox.log(out))
    saved = os.environ.get("DEVBOX_SANDBOX_LOG")
    if saved:
        Path(saved).write_text(text)
    summary = re.findall(r"=+ (\d+) passed(?:, (\d+) skipped)?.* in [\d.]+s", text)
    assert summary, text[-4000:]
    passed, _skipped = summary[-1]
    # The suite is not a sample: most of it runs in the build (the rest needs root or podman).
    assert int(passed) >= 500, text[-4000:]
