"""Attacks on the declaration: values that pass one check and break the next, as a user types
them (`create $'box\\n'`, `--memory $'4G\\n'`) or as a hand edit leaves them.

The promise: every value rule matches the whole value; a declaration change is validated
and rendered before anything is written, so a refused change leaves containers.json,
generated/ and git exactly as they were, and every later change, by anyone, still works; a
declaration that is already bad stops a destroy before it removes anything.
Users act through the privileged path (tests/host.py); root acts as the system.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from attack_declaration_support import ALICE, BOB, CAROL, Written, secrets

from devbox import rules
from host import Host
from support import USERS_NIX, Run, container, run_cli, write_inputs

pytestmark = pytest.mark.slow  # a whole host each

NAMES = ["box\n", "box\r\n", "box\n\n", "\nbox", "bo\nx", "box\u2028", "box\x00", "bóx", "box "]
MEMORIES = ["4G\n", "4G\r", "4G\n\n", "\n4G", "4G 1", "4\nG", "٤G"]


def _refused_and_nothing_written(host: Host, result: Run, before: Written, words: str) -> None:
    assert result.code == 2, (result.code, result.err)
    assert words in result.err, result.err
    assert "Traceback" not in result.err
    assert Written.of(host) == before


def _every_later_change_works(host: Host) -> None:
    """Anyone's next changes go through: a user's, another user's, root's."""
    assert host.cli("create", "next-box", "--no-apply", uid=BOB).code == 0
    assert host.cli("create", "carols", "--no-apply", uid=CAROL).code == 0
    assert host.cli("stop", "next-box", "--no-apply", uid=BOB).code == 0
    assert host.cli("destroy", "carols", "--yes", "--no-apply").code == 0
    assert [r["name"] for r in host.records()] == ["next-box"]


@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_a_hostile_name_is_refused_and_nothing_is_written(host: Host, name: str) -> None:
    before = Written.of(host)
    result = host.cli("create", name, "--no-apply", uid=BOB)
    _refused_and_nothing_written(host, result, before, "is not a valid name")
    assert secrets(host) == []
    _every_later_change_works(host)


@pytest.mark.parametrize("memory", MEMORIES, ids=repr)
def test_a_hostile_memory_size_is_refused_and_nothing_is_written(host: Host, memory: str) -> None:
    before = Written.of(host)
    result = host.cli("create", "box", "--memory", memory, "--no-apply", uid=BOB)
    _refused_and_nothing_written(host, result, before, "is not a memory size")
    _every_later_change_works(host)


@pytest.mark.parametrize(
    ("until", "reason", "words"),
    [
        ("2026-12-24\n", "demo", "is not a day"),
        ("2026-W52-4", "demo", "is not a day"),
        ("20261224", "demo", "is not a day"),
        ("2026-12-24", "demo\nDESTROY now", "contains a line break"),
    ],
    ids=repr,
)
def test_a_hostile_pin_is_refused_and_nothing_is_written(
    host: Host, until: str, reason: str, words: str
) -> None:
    assert host.cli("create", "box", "--no-apply", uid=BOB).code == 0
    before = Written.of(host)
    result = host.cli("pin", "box", "--until", until, "--reason", reason, uid=BOB)
    _refused_and_nothing_written(host, result, before, words)


def test_a_value_a_rule_lets_through_is_still_refused_before_anything_is_written(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rendering is part of the check: even with a gap in a rule, the unit writer's refusal
    # comes before containers.json, generated/ or git are touched.
    monkeypatch.setattr(rules, "container_name", lambda _value: None)
    before = Written.of(host)
    result = host.cli("create", "box\n", "--no-apply", uid=BOB)
    _refused_and_nothing_written(host, result, before, "cannot be written as unit files")
    _every_later_change_works(host)


def _declare_by_hand(host: Host, record: dict[str, object]) -> None:
    """What a hand edit (or an older devbox-ctl) left in containers.json."""
    path = host.repo / "devbox/containers.json"
    document = json.loads(path.read_text())
    document["containers"].append(record)
    path.write_text(json.dumps(document, indent=2))


def test_a_bad_declaration_stops_a_destroy_before_it_removes_anything(host: Host) -> None:
    assert host.cli("create", "web", "--owner", "alice", "--no-apply").code == 0
    _declare_by_hand(host, {"name": "box\n", "owner": "bob"})
    before = Written.of(host)
    host.stand_ins.clear()
    result = host.cli("destroy", "web", "--yes", "--no-apply", uid=ALICE)
    assert result.code == 2, result.err
    assert 'containers[1].name: "box\\n" is not a valid name' in result.err
    assert "Traceback" not in result.err
    # Nothing was stopped or removed: no call to alice's manager or podman, the key is there.
    assert host.stand_ins.calls() == []
    assert secrets(host) == ["devbox-web-ts-authkey"]
    assert Written.of(host) == before
    # Once the declaration is fixed, the destroy runs in full.
    path = host.repo / "devbox/containers.json"
    document = json.loads(path.read_text())
    document["containers"] = document["containers"][:1]
    path.write_text(json.dumps(document))
    assert host.cli("destroy", "web", "--yes", "--no-apply", uid=ALICE).code == 0
    assert host.records() == []
    assert secrets(host) == []


def test_a_state_that_cannot_be_rendered_stops_a_destroy_before_it_removes_anything(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A record that passes validation but cannot be written as a unit (a gap in a rule):
    # destroying another container would leave it there, so that destroy cannot be recorded
    # and must not start.
    monkeypatch.setattr(rules, "container_name", lambda _value: None)
    assert host.cli("create", "web", "--owner", "alice", "--no-apply").code == 0
    _declare_by_hand(host, {"name": "box\n", "owner": "bob"})
    before = Written.of(host)
    host.stand_ins.clear()
    result = host.cli("destroy", "web", "--yes", "--no-apply", uid=ALICE)
    assert result.code == 2, result.err
    assert "cannot be written as unit files" in result.err
    assert host.stand_ins.calls() == []
    assert secrets(host) == ["devbox-web-ts-authkey"]
    assert Written.of(host) == before


def test_a_failed_commit_puts_containers_json_and_generated_back(host: Host) -> None:
    hook = host.repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'refused by the repository' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = Written.of(host)
    result = host.cli("create", "web", "--no-apply", uid=ALICE)
    assert result.code == 3, result.err
    assert "git commit failed" in result.err
    assert Written.of(host) == before
    hook.unlink()
    assert host.cli("create", "web", "--no-apply", uid=ALICE).code == 0
    assert [r["name"] for r in host.records()] == ["web"]


# Hand-edited inputs: `generate` (and with it every verb) refuses them with the file and the
# field, and writes nothing.

USERS_WITH = """{{
  users = {{ alice = {{ uid = 1001; admin = true; }}; bob = {{ uid = 1002; }}; {user} }};
  containers = {{ opVault = "DevBox"; {setting} }};
}}
"""


@pytest.mark.parametrize(
    ("users_nix", "records", "where"),
    [
        (USERS_NIX, [container("box\n")], 'containers[0].name: "box\\n" is not a valid name'),
        (USERS_NIX, [container("box", memory="4G\n")], "containers[0].memory"),
        (USERS_NIX, [container("box", memory="4G\r\n")], "containers[0].memory"),
        (
            USERS_NIX,
            [container("box", created="2026-11-02\n09:00:00Z")],
            "containers[0].created",
        ),
        (
            USERS_NIX,
            [container("box", state="stopped", stoppedAt="2026-11-02T09:00:00Z\n")],
            "containers[0].stoppedAt",
        ),
        (
            USERS_NIX,
            [container("box", pin={"until": "2026-W52-4", "reason": "x"})],
            "containers[0].pin.until",
        ),
        (USERS_WITH.format(user="", setting='defaultMemory = "4G\\n";'), [], "defaultMemory"),
        (USERS_WITH.format(user="", setting='maxMemory = "64G\\n";'), [], "maxMemory"),
        (
            USERS_WITH.format(user="", setting='cleanupRandomizedDelay = "1h\\n";'),
            [],
            "cleanupRandomizedDelay",
        ),
        (
            USERS_WITH.format(user="", setting='cleanupSchedule = "daily\\n";'),
            [],
            "cleanupSchedule",
        ),
        (
            USERS_WITH.format(
                user="", setting='image = "localhost/devbox/devcontainer:latest\\n";'
            ),
            [],
            "containers.image",
        ),
        (USERS_WITH.format(user="", setting='opField = "other-item/credential";'), [], "opField"),
        (USERS_WITH.format(user="", setting='opField = "credential\\n";'), [], "opField"),
        (
            USERS_WITH.format(user='"carol\\n" = { uid = 1003; };', setting=""),
            [],
            'users."carol\\n"',
        ),
    ],
    ids=repr,
)
def test_a_hand_edited_value_with_a_line_break_is_refused_by_name(
    tmp_path: Path, nix: str, users_nix: str, records: list[dict[str, object]], where: str
) -> None:
    config = write_inputs(tmp_path / "config", users_nix, {"version": 1, "containers": records})
    result = run_cli("generate", cwd=config)
    assert result.code == 2, (result.code, result.err)
    assert where in result.err, result.err
    assert "Traceback" not in result.err
    assert not (config / "generated").exists()


def test_sudo_uid_is_a_uid_in_ascii_digits(host: Host) -> None:
    from host import run_privileged

    # sudo writes SUDO_UID; other scripts' digits are digits to str.isdigit and to int().
    result = run_privileged(("list",), "١٠٠١", host.config_path, host.base)  # type: ignore[arg-type]
    assert result.code == 4, result.err
    assert "not a uid" in result.err
