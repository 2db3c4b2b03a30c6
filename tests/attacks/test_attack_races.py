"""Attacks on timing: a change that lands between a check and the act it allowed.

The promise: every decision is re-checked under the config lock against the current
declaration just before it acts, and records are identified by name *and* owner (and
creation time), never by name alone. So a restore never fills another user's container of
the same name, a destroy never removes another owner's new record of its name, and a pin
made while cleanup runs is honoured.

The hostile change is made at the worst moment, deterministically: a hook on the step just
before the act runs the other user's command (through the privileged path, as they would),
then lets the act go on. One test races real processes as well.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from attack_declaration_support import (
    ALICE,
    BOB,
    START,
    Clock,
    monitor_writes,
    mountpoint,
    secrets,
    volume,
)

from devbox import clock
from devbox.container import activity
from devbox.lifecycle import assessment, policy, snapshots
from devbox.runtime import operations
from host import Host

pytestmark = pytest.mark.slow  # a whole host each


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock(START)
    monkeypatch.setattr(clock, "now", frozen)
    return frozen


def _once(action: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def run() -> None:
        if not done:
            done.append(True)
            action()

    return run


def _ok(result: Any) -> None:
    assert result.code == 0, result.err


def _due_for_destroy(host: Host, now: Clock, tmp_path: Path) -> None:
    """alice's web, stopped on day 0 and warned: cleanup destroys it on day 14."""
    _ok(host.cli("create", "web", "--owner", "alice", "--no-apply"))
    monitor_writes(volume(host, "web"), "web", tmp_path / "proc")
    _ok(host.cli("stop", "web", "--no-apply"))
    for day in (11, 13):  # the warnings, 72 and 24 hours ahead
        now.at(days=day)
        assert "warned (destroy" in host.cli("cleanup").out
    now.at(days=14)
    rows = host.cli("cleanup", "--dry-run", "--json").json()["containers"]
    assert [(r["name"], r["action"]) for r in rows] == [("web", "destroy")]


def _during_assessment(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run the action right after cleanup assessed web (from the declaration it read)."""
    real = assessment.assess
    once = _once(action)

    def assess(rt: Any, container: Any, at: Any, budget: Any = None) -> policy.Assessment:
        assessment = real(rt, container, at, budget)
        if container.name == "web":
            once()
        return assessment

    monkeypatch.setattr(assessment, "assess", assess)


def test_a_pin_made_during_a_cleanup_run_is_honoured(
    host: Host, now: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _due_for_destroy(host, now, tmp_path)
    _during_assessment(
        monkeypatch,
        lambda: _ok(
            host.cli("pin", "web", "--until", "2026-11-30", "--reason", "still needed", uid=ALICE)
        ),
    )
    result = host.cli("cleanup")
    assert result.code == 0, result.err
    assert "destroyed" not in result.out
    assert "pinned until 2026-11-30 (still needed)" in result.out
    [web] = host.records()
    assert web["pin"] == {"until": "2026-11-30", "reason": "still needed"}
    assert secrets(host) == ["devbox-web-ts-authkey"]
    assert (mountpoint(host, "web") / activity.RECORD).exists()  # the volume is there


def test_cleanup_never_destroys_another_owners_new_container_of_the_name(
    host: Host, now: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _due_for_destroy(host, now, tmp_path)

    def alice_destroys_and_bob_takes_the_name() -> None:
        _ok(host.cli("destroy", "web", "--yes", "--no-apply", uid=ALICE))
        _ok(host.cli("create", "web", "--no-apply", uid=BOB))

    _during_assessment(monkeypatch, alice_destroys_and_bob_takes_the_name)
    result = host.cli("cleanup")
    assert result.code == 0, result.err
    assert "left alone: no longer declared as assessed" in result.out
    [web] = host.records()
    assert (web["owner"], web["state"]) == ("bob", "running")
    assert secrets(host) == ["devbox-web-ts-authkey"]  # bob's key


def test_a_destroy_never_removes_another_owners_new_record_of_the_name(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ok(host.cli("create", "web", "--owner", "alice", "--no-apply"))
    real = operations.remove_device

    def root_destroys_and_bob_takes_the_name() -> None:
        _ok(host.cli("destroy", "web", "--yes", "--no-apply"))
        _ok(host.cli("create", "web", "--no-apply", uid=BOB))

    once = _once(root_destroys_and_bob_takes_the_name)

    def remove_device(rt: Any, container: Any, done: Any) -> None:
        real(rt, container, done)
        once()  # after alice's destroy removed her things, before it records the removal

    monkeypatch.setattr(operations, "remove_device", remove_device)
    result = host.cli("destroy", "web", "--yes", "--no-apply", uid=ALICE)
    assert result.code == 0, result.err
    [web] = host.records()
    assert web["owner"] == "bob"
    assert host.git_log()[0].startswith("devbox: bob created web")


def _alices_snapshot(host: Host) -> str:
    """A snapshot of alice's web, whose volume held her notes."""
    _ok(host.cli("create", "web", "--owner", "alice", "--no-apply"))
    (volume(host, "web") / "notes").write_text("alice's notes\n")
    _ok(host.cli("destroy", "web", "--yes", "--no-apply", uid=ALICE))
    [snapshot] = host.cli("restore", "--list", "--json", uid=ALICE).json()
    return str(snapshot["id"])


def test_a_restore_never_fills_a_name_another_user_took_in_between(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    _alices_snapshot(host)
    real = snapshots.verify
    once = _once(lambda: _ok(host.cli("create", "shared", "--no-apply", uid=BOB)))

    def verify(snapshot: Any) -> None:
        once()  # after restore's first look at the name, before it claims it
        real(snapshot)

    monkeypatch.setattr(snapshots, "verify", verify)
    result = host.cli("restore", "web", "--as", "shared", "--no-apply", uid=ALICE)
    assert result.code == 2, result.err
    assert "a container named shared exists (owner bob)" in result.err
    [shared] = host.records()
    assert (shared["owner"], shared["state"]) == ("bob", "running")
    assert host.podman("volume", "exists", "shared-data").returncode != 0, (
        "alice's snapshot was written into the volume of bob's container"
    )
    assert not any("restor" in message for message in host.git_log())


def _spawn(host: Host, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devbox", *args],
        cwd=host.base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def test_racing_processes_never_give_a_restore_into_another_users_name(host: Host) -> None:
    _alices_snapshot(host)
    for round_ in range(3):
        name = f"race-{round_}"
        children = [
            _spawn(host, "create", name, "--owner", "bob", "--no-apply"),
            _spawn(host, "restore", "web", "--as", name, "--no-apply"),
        ]
        codes = [child.wait(timeout=300) for child in children]
        records = {r["name"]: r for r in host.records()}
        owner = records[name]["owner"]
        if owner == "bob":
            assert codes[1] != 0, "restore reported success for a name bob holds"
            assert host.podman("volume", "exists", f"{name}-data").returncode != 0
        else:
            assert owner == "alice"
            assert codes == [2, 0]
            notes = mountpoint(host, name) / "notes"
            assert notes.read_text() == "alice's notes\n"
