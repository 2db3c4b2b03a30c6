"""The documentation's commands run, and what it says of the code is what the code does.

Every shell block of README.md and docs/*.md (```sh, ```bash, ```console, ```shell) carries
a marker on the line before it, an HTML comment that GitHub does not show:

- `<!-- runnable -->`, or `<!-- runnable: exit=N output="text" … -->`: this test runs it
  (exit code 0 unless `exit=` says otherwise; each `output=` must appear in what it prints);
- `<!-- not-runnable: why -->`: it needs what no test machine has (a NixOS host, a fleet, a
  running container), and says which.

So no block is left untested without a reason. The runnable blocks run as the README says:
as root, in a copy of this checkout (the files git tracks, with this checkout's .venv), the
README's blocks first and in order, each in a shell of its own from the copy's root; the
README's scratch directory /tmp/devbox-try is one of the test's own. The blocks of a file in
docs/ run in order in an empty directory of their own (a config repository, for
docs/orchestrator.md), with the copy's devbox-ctl on PATH and DEVBOX_CONFIG naming the README's
scratch config (docs/host-config.md). A date in a shell block must not be in the past: an
example that expires is a command that fails from that day on.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support import REPO, USERS_NIX, require_root, run_cli, tracked_copy

SHELLS = {"sh", "bash", "console", "shell"}
TRY = "/tmp/devbox-try"  # the README's scratch directory (Trying the verbs without an orchestrator)
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^<!--\s*(?P<kind>runnable|not-runnable)\s*(?::\s*(?P<rest>.*?))?\s*-->$")
_DATE = re.compile(r"\b(20\d\d-[01]\d-[0-3]\d)\b")


@dataclass
class Block:
    """A fenced block of a Markdown file."""

    path: Path
    line: int  # of the opening fence, from 1
    info: str
    text: str
    marker: str | None  # the comment on the line before, if any
    kind: str | None = None
    exit: int = 0
    outputs: list[str] = field(default_factory=list)
    why: str = ""

    @property
    def where(self) -> str:
        shown = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path
        return f"{shown}:{self.line}"

    @property
    def shell(self) -> bool:
        return (self.info.split() or [""])[0] in SHELLS


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the marker before each."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{fence}`*\s*$", lines[j]):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        before = lines[k].strip() if k >= 0 else ""
        block = Block(path, i + 1, opening["info"].strip(), "\n".join(body) + "\n", None)
        if before.startswith("<!--"):
            block.marker = before
            _parse_marker(block)
        found.append(block)
        i = j + 1
    return found


def _parse_marker(block: Block) -> None:
    assert block.marker is not None
    marker = _MARKER.match(block.marker)
    if not marker:
        return
    block.kind, rest = marker["kind"], marker["rest"] or ""
    if block.kind == "not-runnable":
        block.why = rest
        return
    for word in shlex.split(rest):
        key, _, value = word.partition("=")
        if key == "exit":
            block.exit = int(value)
        elif key == "output":
            block.outputs.append(value)
        else:
            raise AssertionError(f"{block.where}: unknown key {key!r} in the runnable marker")


def documents() -> list[Path]:
    """README.md (not in the flake's check source, which holds docs/ only) and docs/*.md."""
    readme = REPO / "README.md"
    return [*([readme] if readme.is_file() else []), *sorted((REPO / "docs").glob("*.md"))]


def shell_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks(path) if block.shell]


def test_every_shell_block_says_whether_it_runs() -> None:
    unmarked = [
        f"{b.where}: ```{b.info} without <!-- runnable --> or <!-- not-runnable: why -->"
        for b in shell_blocks()
        if b.kind is None
    ]
    reasonless = [
        f"{b.where}: not-runnable without a reason"
        for b in shell_blocks()
        if b.kind == "not-runnable" and not b.why
    ]
    assert not unmarked + reasonless
    assert any(b.kind == "runnable" for b in shell_blocks())


def test_no_shell_block_holds_a_date_that_has_passed() -> None:
    today = datetime.now(UTC).date().isoformat()
    past = [
        f"{b.where}: {date} has passed"
        for b in shell_blocks()
        for date in _DATE.findall(b.text)
        if date < today
    ]
    assert not past


def test_the_date_check_sees_a_past_date(tmp_path: Path) -> None:
    """The check above reads dates in marked blocks, as a runnable block holds them."""
    page = tmp_path / "page.md"
    page.write_text("<!-- runnable -->\n```sh\ndevbox-ctl pin web --until 2020-01-01\n```\n")
    (block,) = blocks(page)
    assert (block.kind, _DATE.findall(block.text)) == ("runnable", ["2020-01-01"])


def test_markers_are_read_with_their_expectations(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '1. A step:\n\n   <!-- runnable: exit=1 output="a b" output=c -->\n   ```sh\n'
        "   false\n   ```\n\n<!-- not-runnable: a real host -->\n```bash\nx\n```\n\n```sh\ny\n```\n"
    )
    first, second, third = blocks(page)
    assert (first.kind, first.exit, first.outputs, first.text) == (
        "runnable",
        1,
        ["a b", "c"],
        "false\n",
    )
    assert (second.kind, second.why) == ("not-runnable", "a real host")
    assert third.kind is None


def _run(block: Block, cwd: Path, env: dict[str, str], scratch: Path) -> str:
    """Run one block; a failure message, or ''."""
    script = block.text.replace(TRY, str(scratch / "devbox-try"))
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    printed = result.stdout + result.stderr
    missing = [text for text in block.outputs if text not in printed]
    if result.returncode != block.exit or missing:
        return (
            f"{block.where}: exit {result.returncode} (expected {block.exit})"
            + (f", without {missing}" if missing else "")
            + f"\n{printed}"
        )
    return ""


@pytest.mark.slow
def test_the_runnable_blocks_run(tmp_path: Path) -> None:
    require_root("the README's blocks run as root, as it says (a scratch setup has no sudo rule)")
    if not (REPO / ".venv" / "bin" / "devbox-ctl").exists():
        pytest.skip("needs the checkout's .venv (scripts/setup.sh makes it)")
    if not (REPO / "README.md").is_file():
        pytest.skip("no README.md here (the flake's check source holds docs/ only)")
    checkout = tmp_path / "checkout"
    tracked_copy(checkout)
    (checkout / ".venv").symlink_to(REPO / ".venv")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEVBOX_CONFIG", "DEVBOX_DEBUG", "PYTHONPATH"}
    }
    env |= {"PATH": f"{checkout / '.venv' / 'bin'}:{os.environ['PATH']}", "TMPDIR": str(scratch)}
    failures = []
    ran = 0
    for path in documents():
        runnable = [b for b in blocks(path) if b.shell and b.kind == "runnable"]
        if not runnable:
            continue
        if path.name == "README.md":
            cwd, block_env = checkout, env
        else:
            cwd = tmp_path / "docs" / path.stem
            cwd.mkdir(parents=True)
            block_env = env | {"DEVBOX_CONFIG": str(scratch / "devbox-try" / "config.json")}
        for block in runnable:
            ran += 1
            failure = _run(block, cwd, block_env, scratch)
            if failure:
                failures.append(failure)
                break  # the file's next blocks build on this one
    assert not failures, "\n\n".join(failures)
    assert ran >= 4


# What the docs say of the code, checked against it.


def _cli_doc() -> str:
    return (REPO / "docs" / "cli.md").read_text(encoding="utf-8")


def test_docs_cli_names_every_fleet_host_op() -> None:
    from devbox.cli import fleet_host

    documented = _cli_doc()
    missing = [op for op in fleet_host.command.commands if f"fleet-host {op}" not in documented]
    assert not missing


def test_docs_host_config_names_every_key_of_config_json() -> None:
    from devbox.host.hostconfig import HostConfig

    documented = (REPO / "docs" / "host-config.md").read_text(encoding="utf-8")
    keys = [f.alias or name for name, f in HostConfig.model_fields.items()]
    assert "deployedManifest" in keys
    assert not [
        key for key in keys if f"| `{key}`" not in documented and f", `{key}`" not in documented
    ]


def test_docs_manifest_names_every_key_of_a_container_entry() -> None:
    text = (REPO / "docs" / "manifest.md").read_text(encoding="utf-8")
    table = text.split("## Container entry", 1)[1].split("\n## ", 1)[0]
    keys: set[str] = set()
    for manifest in (REPO / "examples").glob("*/generated/**/manifest.json"):
        for entry in (
            json.loads(manifest.read_text(encoding="utf-8")).get("containers", {}).values()
        ):
            keys |= set(entry)
    assert {"host", "labels"} <= keys  # examples/fleet's slices hold them
    assert not sorted(key for key in keys if f"| `{key}` |" not in table)


def test_docs_fleet_list_has_a_single_hosts_columns_after_host() -> None:
    from devbox.cli import list_

    assert ("HOST", *list_.COLUMNS) == list_.FLEET_COLUMNS
    fleet = (REPO / "docs" / "fleet.md").read_text(encoding="utf-8")
    assert "with a HOST column before a single host's columns" in fleet


def test_declarative_commands_find_containers_json_beside_users_nix(
    tmp_path: Path,
    nix: str,  # users.nix is read with Nix
) -> None:
    """docs/orchestrator.md step 3: `generate --users devbox/users.nix` from the repository."""
    (tmp_path / "devbox").mkdir()
    (tmp_path / "devbox" / "users.nix").write_text(USERS_NIX)
    (tmp_path / "devbox" / "containers.json").write_text('{"version": 1, "containers": []}\n')
    for verb in ("generate", "check", "plan"):
        result = run_cli(verb, "--users", "devbox/users.nix", cwd=tmp_path)
        assert result.code == 0, (verb, result.out, result.err)
    assert (tmp_path / "devbox" / "generated" / "manifest.json").is_file()
    assert not (tmp_path / "generated").exists()


def _create_lines() -> list[tuple[Block, bool, list[str]]]:
    """Every `devbox-ctl create` of a block (a shell block, or one a page shows without a
    language): the block, whether root runs it (sudo), its arguments. Left out: a synopsis
    (`create NAME [--cpu N]`, with placeholders) and a line with a command substitution."""
    found = []
    for block in (b for path in documents() for b in blocks(path)):
        for line in block.text.splitlines():
            if "$(" in line or "devbox-ctl create" not in line:
                continue
            words = shlex.split(line, comments=True)
            if "create" not in words:  # in a comment
                continue
            at = words.index("create")
            if at == 0 or not words[at - 1].endswith("devbox-ctl"):
                continue
            if any(word.isupper() or word.startswith("[") for word in words[at + 1 :]):
                continue
            found.append((block, "sudo" in words[:at], words[at + 1 :]))
    return found


def test_documented_creates_pass_creates_request_checks(tmp_path: Path, nix: str) -> None:
    """README's fleet block once had `sudo devbox-ctl create web` (root must pass --owner) and
    `create ml` (too short a name): each documented create is parsed by create's own options and
    checked by create's own request checks, as root for a sudo line, as alice otherwise."""
    from dataclasses import replace

    from devbox.cli import create
    from devbox.errors import DevboxError
    from devbox.host import context, identity
    from devbox.runtime import operations

    if not (REPO / "README.md").is_file():
        pytest.skip("no README.md here (the flake's check source holds docs/ only)")
    repo = tmp_path / "repo"
    for name in ("users.nix", "containers.json"):
        repo.mkdir(exist_ok=True)
        shutil.copy2(REPO / "examples" / "basic" / name, repo / name)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "configRepo": str(repo),
                "usersFile": "users.nix",
                "containersFile": "containers.json",
                "generatedDir": "generated",
                "stateDir": str(tmp_path / "state"),
            }
        )
    )
    rt = context.build(privileged=False, sudo_uid=None, config_path=config)
    users = rt.desired.users
    lines = _create_lines()
    assert any(as_root for _block, as_root, _args in lines)
    wrong = []
    for block, as_root, args in lines:
        caller = identity.identify(0 if as_root else users["alice"].uid, users)
        params = create.command.make_context("create", list(args)).params
        try:
            operations.check_request(
                replace(rt, caller=caller),
                params["name"],
                params["owner"],
                params["cpu"],
                params["memory"],
            )
        except DevboxError as exc:
            wrong.append(f"{block.where}: create {shlex.join(args)}: {exc.message}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.slow
def test_bench_snapshot_runs_and_prints_the_sha256_it_is_quoted_for(tmp_path: Path) -> None:
    """README and docs/lifecycle.md quote bench_snapshot.py's sha256 share: it must run (it once
    crashed on Podman's signature) and print that column."""
    from support import require_tool

    require_root("the benchmark's podman storage is rootful, in a directory of its own")
    require_tool("podman", shutil.which("podman"))
    result = subprocess.run(
        [sys.executable, "bench_snapshot.py", "--dir", str(tmp_path), "--size", "1", "--runs", "1"],
        cwd=REPO / "bench",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "file",
        "podman",
        "s",
        "snapshot",
        "s",
        "sha256",
        "s",
        "archive",
        "on",
        "disk",
    ]
    assert [row.split()[:3] for row in rows] == [["1", "MiB", "sparse"], ["1", "MiB", "random"]]
