"""The flake's Python check (checks.x86_64-linux.pytest-nix), replayed as its build sees it.

No Nix build can run here, so this test rebuilds the build's view from the flake itself and
runs the check phase in it:

- the source: the files git tracks (what a flake's source holds), then exactly those the
  derivation's source set selects, listed by lib.fileset (eval-check.nix; Nix >= 2.14, which
  scripts/setup.sh installs from Debian 13 on Debian 12);
- PATH: only the programs of the packages the derivation declares as check inputs (the Debian
  builds of the same programs, declared_programs.py), the interpreter and stdenv's own tools;
  Python packages are those of the test environment, which installs exactly pyproject.toml's
  lists, the lists the flake reads;
- the environment a Nix builder has: HOME=/homeless-shelter, NIX_BUILD_TOP and TMPDIR in the
  build directory, NIX_BUILD_CORES, the derivation's `env` (its store paths replaced by the
  same things here: nixpkgs' lib, Quadlet), `$out` holding the installed package;
- no network (`unshare --net`, only loopback, as the build sandbox);
- then the derivation's own checkPhase text, run by bash with errexit as stdenv runs phases.

The replay skips inside the Nix build itself (no git checkout there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from declared_programs import STDENV, path_of
from nix_eval import nixpkgs_lib
from support import find_quadlet, require_tool

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# nixpkgs Python packages → the programs their bin/ holds (from this environment's venv).
PYTHON_PROGRAMS = {
    "python3": ("python3", "python"),
    "pytest": ("pytest", "py.test"),
    "hypothesis": (),
    "pytest-xdist": (),
    "mypy": ("mypy",),
    "ruff": ("ruff",),
    "setuptools": (),
    "click": (),
    "pydantic": (),
    "jinja2": (),
    "deepdiff": (),
}


def nix_with_fileset() -> str:
    """A nix-instantiate with lib.fileset (Nix >= 2.14): setup.sh's, or one on PATH."""
    candidates = [
        os.environ.get("DEVBOX_FILESET_NIX"),
        str(REPO / ".tools/nix/bin/nix-instantiate"),
    ]
    candidates.append(shutil.which("nix-instantiate"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and has_fileset(candidate):
            return candidate
    return require_tool("Nix >= 2.14 (lib.fileset; scripts/setup.sh installs it)", None)


def has_fileset(nix: str) -> bool:
    version = subprocess.run([nix, "--version"], capture_output=True, text=True, check=False)
    number = version.stdout.split()[-1] if version.returncode == 0 and version.stdout else "0"
    parts = tuple(int(p) for p in number.split(".")[:2] if p.isdigit())
    return parts >= (2, 14)


def tracked_copy(destination: Path) -> Path:
    """The files git tracks, as the flake's source: a flake in a git checkout sees only those."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout (inside the Nix build itself): nothing to replay")
    git = require_tool("git", shutil.which("git"))
    listed = subprocess.run(
        [git, "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file() or source.is_symlink():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    return destination


def evaluate_check(checkout: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            nix_with_fileset(),
            "--store",
            "dummy://",
            "--eval",
            "--strict",
            "--json",
            str(checkout / "tests/nix/eval-check.nix"),
            "--arg",
            "lib",
            f"import {nixpkgs_lib()}",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HOME": str(checkout.parent / "nix-home")},
    )
    assert result.returncode == 0, result.stderr
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def check_path(check: dict[str, Any], folder: Path) -> str:
    """PATH: stdenv's tools, the declared check inputs, the interpreter, nothing else."""
    python = [*check["nativeCheckInputs"], *check["dependencies"], "python3"]
    for attribute in python:
        for program in PYTHON_PROGRAMS.get(attribute, ()):
            (folder / program).parent.mkdir(parents=True, exist_ok=True)
            if not (folder / program).exists():
                (folder / program).symlink_to(VENV_BIN / program)
    others = [a for a in check["nativeCheckInputs"] if a not in PYTHON_PROGRAMS]
    return path_of([*STDENV, *others], folder)


def installed_package(check: dict[str, Any], build: Path, out: Path) -> None:
    """$out: devbox as installed, its console scripts and site-packages."""
    site = out / check["sitePackages"]
    site.parent.mkdir(parents=True)
    site.symlink_to(build / check["sourceRoot"] / "src")
    (out / "bin").mkdir()
    for script, target in (
        ("devbox-ctl", "from devbox.cli import main; main()"),
        ("devbox-privileged", "from devbox.privileged import entry; entry()"),
    ):
        path = out / "bin" / script
        path.write_text(f"#!{sys.executable}\nimport sys\n{target}\n")
        path.chmod(0o755)


@pytest.mark.slow
def test_the_flake_check_passes_in_a_replay_of_its_build(tmp_path: Path) -> None:
    checkout = tracked_copy(tmp_path / "checkout")
    check = evaluate_check(checkout)
    assert check["checkIsThePackage"]

    build = tmp_path / "build"
    source = build / check["sourceName"]
    for name in check["files"]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkout / name, source / name)
    (build / "tmp").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    installed_package(check, build, out)

    replaced = {
        check["nixpkgs"]: str(nixpkgs_lib().parent),
        check["quadlet"]: require_tool("Quadlet", find_quadlet()),
    }
    derivation_env = {name: replaced.get(value, value) for name, value in check["env"].items()}
    env = {
        "PATH": check_path(check, tmp_path / "path"),
        "HOME": "/homeless-shelter",
        "NIX_BUILD_TOP": str(build),
        "NIX_BUILD_CORES": "2",
        "TMPDIR": str(build / "tmp"),
        "TMP": str(build / "tmp"),
        "TEMP": str(build / "tmp"),
        "TEMPDIR": str(build / "tmp"),
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONPATH": "",
        "out": str(out),
        **derivation_env,
    }
    phase = f"runHook() {{ :; }}\ncd {check['sourceRoot']}\n{check['checkPhase']}"
    unshare = require_tool("unshare (util-linux)", shutil.which("unshare"))
    ip = require_tool("ip (iproute2)", shutil.which("ip") or "/usr/sbin/ip")
    # A network namespace of its own with only loopback up, as the build sandbox has.
    isolated = [unshare, "--net", "--", "/bin/bash", "-c", f'{ip} link set lo up && exec "$@"', "-"]
    result = subprocess.run(
        [*isolated, "/bin/bash", "-e", "-u", "-o", "pipefail", "-c", phase],
        cwd=build,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    (tmp_path / "check.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert " passed" in result.stdout
