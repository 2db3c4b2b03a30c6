"""Helpers for the tests: the real tools, running devbox-ctl, writing inputs.

A test that needs a tool skips with the reason when the tool is missing, except when
DEVBOX_REQUIRE_TOOLS=1 (CI sets it): then the missing tool is a failure, so a test cannot
pass by not running.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devbox.cli import main

REPO = Path(__file__).resolve().parent.parent
QUADLET_CANDIDATES = (
    "/usr/libexec/podman/quadlet",
    str(REPO / ".tools" / "quadlet"),
)

USERS_NIX = """{
  users = {
    alice = { uid = 1001; admin = true; };
    bob = { uid = 1002; };
  };
  containers = { opVault = "DevBox"; };
}
"""


def require_tool(name: str, path: str | None) -> str:
    """The tool's path, or skip (fail under DEVBOX_REQUIRE_TOOLS=1) when it is missing."""
    if path:
        return path
    message = f"{name} is not installed (the README's test command installs it)"
    if os.environ.get("DEVBOX_REQUIRE_TOOLS") == "1":
        pytest.fail(message + "; DEVBOX_REQUIRE_TOOLS=1 makes this a failure")
    pytest.skip(message)
    return ""  # unreachable: skip raises


def console_script(name: str = "devbox-ctl") -> str:
    """An installed console script of devbox: beside this interpreter in a virtual
    environment, on PATH in the flake's check (the package's $out/bin); skip without it."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    return require_tool(f"{name} (devbox's console script)", found)


def require_root(why: str) -> None:
    """Skip (fail under DEVBOX_REQUIRE_TOOLS=1) unless the test runs as root.

    Nix's build sandbox runs the flake's check as an unprivileged builder, without
    CAP_CHOWN or CAP_DAC_OVERRIDE: a test that gives files to another uid cannot run there.
    CI runs the suite as root, so there it runs.
    """
    if os.geteuid() == 0:
        return
    message = f"needs root: {why}"
    if os.environ.get("DEVBOX_REQUIRE_TOOLS") == "1":
        pytest.fail(message + "; DEVBOX_REQUIRE_TOOLS=1 makes this a failure")
    pytest.skip(message)


def writable_copy(source: Path, target: Path, *ignored: str) -> Path:
    """A copy of a folder of the repository that the test may change; TARGET.

    In the flake's check the repository comes from the Nix store, read-only (files 0444 or
    0555, folders 0555), and stdenv makes only sourceRoot (generator/) writable: a plain
    copy keeps the store's modes. The copy is made writable as `chmod -R u+w` would.
    """
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*ignored) if ignored else None)
    for path in (target, *target.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    return target


def writable_file_copy(source: Path, target: Path) -> Path:
    """A copy of one file of the repository that the test may change (see writable_copy)."""
    shutil.copyfile(source, target)
    target.chmod(target.stat().st_mode | 0o200)
    return target


def tracked_copy(destination: Path) -> None:
    """The files git tracks, as they are in this checkout, with their times kept (so setup.sh
    in the copy sees the shared .venv installed after them)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = REPO / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def find_quadlet() -> str | None:
    """Podman's Quadlet generator: $DEVBOX_QUADLET, PATH, podman's libexec, or .tools/."""
    explicit = os.environ.get("DEVBOX_QUADLET")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    on_path = shutil.which("quadlet")
    if on_path:
        return on_path
    return next((c for c in QUADLET_CANDIDATES if os.access(c, os.X_OK)), None)


@dataclass
class Run:
    """What a devbox-ctl run left: exit code and output."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: str, cwd: Path | None = None) -> Run:
    """Run devbox-ctl in this process, as the console script would, and capture its output."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with (
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Run(code, out.getvalue(), err.getvalue())


def quadlet_dryrun(quadlet: str, unit_dir: Path) -> str:
    """Run the real Quadlet generator over a directory; fail with its message if it refuses."""
    result = subprocess.run(
        [quadlet, "-dryrun", "-user"],
        env={**os.environ, "QUADLET_UNIT_DIRS": str(unit_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"quadlet refused {unit_dir}:\n{result.stderr}"
    return result.stdout


def quadlet_generate(quadlet: str, unit_dir: Path, out: Path) -> list[Path]:
    """Write the services Quadlet makes of a directory's units into out."""
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [quadlet, "-user", str(out)],
        env={**os.environ, "QUADLET_UNIT_DIRS": str(unit_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"quadlet refused {unit_dir}:\n{result.stderr}"
    return sorted(out.glob("*.service"))


def systemd_verify(systemd_analyze: str, units: list[Path], root: Path) -> None:
    """`systemd-analyze verify` the units inside a small root.

    The root holds the units under /etc/systemd/system and the host's own units (for targets
    such as timers.target). verify also checks that each command exists: the root gets stand-in
    executables for /run/current-system/sw/bin/devbox-ctl (the NixOS system profile path the
    cleanup service runs) and for the podman path this Quadlet build writes into services.
    """
    system = root / "etc/systemd/system"
    system.mkdir(parents=True, exist_ok=True)
    lib = root / "usr/lib/systemd"
    lib.mkdir(parents=True, exist_ok=True)
    if not (lib / "system").exists():
        (lib / "system").symlink_to("/lib/systemd/system")
    for command in ("run/current-system/sw/bin/devbox-ctl", "usr/bin/podman"):
        stand_in = root / command
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        stand_in.write_text("#!/bin/sh\nexit 0\n")
        stand_in.chmod(0o755)
    for unit in units:
        shutil.copy(unit, system / unit.name)
    result = subprocess.run(
        [systemd_analyze, "verify", "--man=no", f"--root={root}", *(u.name for u in units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"systemd-analyze verify failed:\n{result.stderr}"
    # verify exits 0 on some warnings; a line about our units is a problem all the same.
    ours = [line for line in result.stderr.splitlines() if any(u.name in line for u in units)]
    assert not ours, "systemd-analyze verify warned:\n" + "\n".join(ours)


def write_inputs(directory: Path, users_nix: str, containers: Any) -> Path:
    """Write users.nix and containers.json into a directory; return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "users.nix").write_text(users_nix)
    text = containers if isinstance(containers, str) else json.dumps(containers, indent=2)
    (directory / "containers.json").write_text(text)
    return directory


def edit_record(config: Path, name: str, **fields: object) -> None:
    """Change fields of one record of config/containers.json, as a person editing it would."""
    path = config / "containers.json"
    data = json.loads(path.read_text())
    for record in data["containers"]:
        if record["name"] == name:
            record.update(fields)
    path.write_text(json.dumps(data, indent=2))


def container(name: str, owner: str = "alice", **fields: Any) -> dict[str, Any]:
    """A containers.json record."""
    return {"name": name, "owner": owner, **fields}


STAND_IN = """#!{python}
# Stand-in for `{name}`, written by the tests: it records its argv and stdin, and answers by
# the first rule in {rules} whose words all appear in its argv (default: exit 0, no output).
import json, os, sys
argv = sys.argv[1:]
stdin = sys.stdin.read() if not sys.stdin.isatty() else ""
with open({log!r}, "a") as log:
    log.write(json.dumps({{"name": {name!r}, "argv": argv, "stdin": stdin}}) + "\\n")
# systemctl and systemd-run refuse what the real ones refuse (tests/stand_ins/systemd_cli.py).
sys.path.insert(0, {stand_ins!r})
if {name!r} in ("systemctl", "systemd-run"):
    import systemd_cli
    systemd_cli.check_recorded_call({name!r}, argv)
rules = json.load(open({rules!r})) if os.path.exists({rules!r}) else []
for rule in rules:
    if all(word in argv for word in rule.get("match", [])):
        sys.stdout.write(rule.get("stdout", ""))
        sys.stderr.write(rule.get("stderr", ""))
        sys.exit(rule.get("exit", 0))
"""


def stand_in_launcher(script: str) -> str:
    """An executable's text that runs tests/stand_ins/<script> with this Python."""
    import sys

    stand_ins = REPO / "tests" / "stand_ins"
    return (
        f"#!{sys.executable}\nimport runpy, sys\nsys.path.insert(0, {str(stand_ins)!r})\n"
        f"runpy.run_path({str(stand_ins / script)!r}, run_name='__main__')\n"
    )


class StandIns:
    """Executables on PATH that stand in for services no test can reach.

    Each records every call (argv and stdin) in calls.jsonl and answers by rules the test
    sets; a test that uses one says what it stands in for.
    """

    def __init__(self, directory: Path) -> None:
        self.bin = directory / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.log = directory / "calls.jsonl"
        self.log.touch()
        self.rules_dir = directory / "rules"
        self.rules_dir.mkdir(exist_ok=True)

    def add(self, name: str, rules: list[dict[str, Any]] | None = None) -> None:
        import sys

        path = self.bin / name
        path.write_text(
            STAND_IN.format(
                python=sys.executable,
                name=name,
                log=str(self.log),
                rules=str(self.rules_dir / f"{name}.json"),
                stand_ins=str(REPO / "tests" / "stand_ins"),
            )
        )
        path.chmod(0o755)
        self.rules(name, rules or [])

    def rules(self, name: str, rules: list[dict[str, Any]]) -> None:
        (self.rules_dir / f"{name}.json").write_text(json.dumps(rules))

    def calls(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        calls = [json.loads(line) for line in lines]
        return [c for c in calls if name is None or c["name"] == name]

    def argvs(self, name: str) -> list[list[str]]:
        return [c["argv"] for c in self.calls(name)]

    def clear(self) -> None:
        self.log.write_text("")
