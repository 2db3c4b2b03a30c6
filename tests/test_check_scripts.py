"""The scripts the flake's checks run (scripts/check-*.sh), against the real programs.

check-quadlet.sh runs real Quadlet, check-generated.sh the real devbox-ctl with real Nix,
check-formatting.sh real ruff and shellcheck. nixfmt has no Debian package, so the formatting
test puts a stand-in first on PATH that records which files it was asked to check (exit 0)
and checks the selection only: that nixfmt itself accepts the Nix files is what the flake's
check runs with nixpkgs' nixfmt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO, console_script, require_tool, writable_copy

SCRIPTS = REPO / "scripts"
EXAMPLE_USERS = REPO / "examples" / "basic" / "generated" / "users"
FLEET_SLICES = REPO / "examples" / "fleet" / "generated" / "hosts"


def run(script: str, *args: str, cwd: Path, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        cwd=cwd,
        env={"PATH": path, "HOME": str(cwd)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_quadlet_accepts_the_example_and_refuses_a_broken_unit(
    tmp_path: Path, quadlet: str
) -> None:
    ok = run("check-quadlet.sh", str(EXAMPLE_USERS), quadlet, cwd=tmp_path, path=os.environ["PATH"])
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("quadlet: ") == len(list(EXAMPLE_USERS.iterdir()))

    # The flake's check passes the fleet's slices too: every uid folder of each is checked.
    slices = sorted(str(users) for users in FLEET_SLICES.glob("*/users"))
    assert len(slices) == 3
    every = run(
        "check-quadlet.sh",
        str(EXAMPLE_USERS),
        *slices,
        quadlet,
        cwd=tmp_path,
        path=os.environ["PATH"],
    )
    assert every.returncode == 0, every.stderr
    uid_folders = [d for users in [EXAMPLE_USERS, *map(Path, slices)] for d in users.iterdir()]
    assert every.stdout.count("quadlet: ") == len(uid_folders)
    broken_slice = writable_copy(FLEET_SLICES / "beta" / "users", tmp_path / "beta-users")
    unit = next(broken_slice.glob("*/*.container"))
    unit.write_text(unit.read_text().replace("[Container]", "[Container]\nNoSuchKey=1"))
    refused = run(
        "check-quadlet.sh",
        str(EXAMPLE_USERS),
        str(broken_slice),
        quadlet,
        cwd=tmp_path,
        path=os.environ["PATH"],
    )
    assert refused.returncode != 0

    broken = tmp_path / "users"
    writable_copy(EXAMPLE_USERS, broken)
    unit = next(broken.glob("*/*.container"))
    unit.write_text(unit.read_text().replace("[Container]", "[Container]\nNoSuchKey=1"))
    refused = run("check-quadlet.sh", str(broken), quadlet, cwd=tmp_path, path=os.environ["PATH"])
    assert refused.returncode != 0

    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run("check-quadlet.sh", str(empty), quadlet, cwd=tmp_path, path=os.environ["PATH"])
    assert nothing.returncode == 1
    assert "no generated units" in nothing.stderr


def test_the_generated_example_is_up_to_date_and_a_change_is_found(
    tmp_path: Path, nix: str
) -> None:
    devbox_ctl = console_script()
    path = f"{Path(devbox_ctl).parent}:{Path(nix).parent}:{environment_path()}"
    source = tmp_path / "example-source"
    writable_copy(REPO / "examples", source / "examples")
    (tmp_path / "ok").mkdir()
    ok = run("check-generated.sh", str(source), cwd=tmp_path / "ok", path=path)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    assert ok.stdout.count("devbox-ctl check: ") == 2, ok.stdout
    assert "examples/fleet/" in ok.stdout

    unit = next((source / "examples/basic/generated/users").glob("*/*.container"))
    unit.write_text(unit.read_text() + "# edited by hand\n")
    (tmp_path / "changed").mkdir()
    changed = run("check-generated.sh", str(source), cwd=tmp_path / "changed", path=path)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    unit.write_text(unit.read_text().replace("# edited by hand\n", ""))

    # A hand edit in one of the fleet's slices is found too.
    fleet_unit = next((source / "examples/fleet/generated/hosts/beta/users").glob("*/*.container"))
    fleet_unit.write_text(fleet_unit.read_text() + "# edited by hand\n")
    (tmp_path / "fleet-changed").mkdir()
    fleet_changed = run(
        "check-generated.sh", str(source), cwd=tmp_path / "fleet-changed", path=path
    )
    assert fleet_changed.returncode == 1, fleet_changed.stdout + fleet_changed.stderr


def environment_path() -> str:
    """The programs the test's environment has: in the flake's check, exactly its declared
    inputs (a Nix build has no /usr/bin, and only sh in /bin); never a fixed /usr/bin."""
    return os.environ.get("PATH", os.defpath)


@pytest.fixture
def formatting_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for name, text in {
        "module.nix": "{ }\n",
        "tests/golden/bad/users.nix": "{ this is not nix\n",
        "tool.py": 'print("formatted")\n',
        "script.sh": '#!/usr/bin/env bash\necho "$1"\n',
        "scripts/run": '#!/usr/bin/env bash\necho "$1"\n',
        "scripts/data.txt": "not a script\n",
        ".ci/run": '#!/bin/sh\nexec echo "$@"\n',
    }.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    return tree


def formatting_path(tmp_path: Path) -> tuple[str, Path]:
    shellcheck = require_tool("shellcheck", shutil.which("shellcheck"))
    ruff = require_tool(
        "ruff", shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    )
    stand_in = tmp_path / "stand-in"
    stand_in.mkdir()
    record = tmp_path / "nixfmt-args"
    (stand_in / "nixfmt").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {record}\n')
    (stand_in / "nixfmt").chmod(0o755)
    for tool in (shellcheck, ruff):
        (stand_in / Path(tool).name).symlink_to(tool)
    return f"{stand_in}:{environment_path()}", record


def test_formatting_checks_the_right_files(tmp_path: Path, formatting_tree: Path) -> None:
    path, record = formatting_path(tmp_path)
    result = run("check-formatting.sh", cwd=formatting_tree, path=path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert record.read_text().split() == ["--check", "./module.nix"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("tool.py", "print( 'not formatted' )\n"),
        ("script.sh", "#!/usr/bin/env bash\nrm $1\n"),
        ("scripts/run", "#!/usr/bin/env bash\nrm $1\n"),
        (".ci/run", "#!/bin/sh\nrm $1\n"),
    ],
)
def test_formatting_fails_on_a_defect(
    tmp_path: Path, formatting_tree: Path, name: str, text: str
) -> None:
    path, _record = formatting_path(tmp_path)
    (formatting_tree / name).write_text(text)
    assert run("check-formatting.sh", cwd=formatting_tree, path=path).returncode != 0
