"""devbox-ctl keepalive inside a container: leases on file, and one held while a command runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devbox import clock
from devbox.container import activity, keepalive, monitor
from devbox.errors import UsageError
from support import run_cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A container's home: the activity monitor has written its record there."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monitor.Monitor(tmp_path, "web", interval=60).tick()
    assert (tmp_path / activity.RECORD).is_file()
    return tmp_path


def leases(home: Path) -> list[dict]:
    return json.loads((home / activity.LEASES).read_text())["leases"]


def test_a_lease_for_48_hours(home: Path, now) -> None:
    result = run_cli("keepalive", "--for", "48h", "--reason", "training run")
    assert result.code == 0, result.err
    [lease] = leases(home)
    assert lease["until"] == "2026-11-04T09:00:00Z"
    assert lease["createdAt"] == "2026-11-02T09:00:00Z"
    assert lease["reason"] == "training run"
    assert f"Kept alive until 2026-11-04 09:00 UTC (lease {lease['id']})" in result.out

    listed = run_cli("keepalive", "--list")
    assert listed.out == f"{lease['id']}  until 2026-11-04 09:00 UTC  training run\n"
    assert run_cli("keepalive", "--cancel", lease["id"]).out == "Ended 1 lease.\n"
    assert leases(home) == []


def test_expired_leases_are_dropped_when_the_file_changes(home: Path, now) -> None:
    run_cli("keepalive", "--for", "1h")
    now.advance(hours=2)
    run_cli("keepalive", "--for", "3d")
    assert [lease["until"] for lease in leases(home)] == ["2026-11-05T11:00:00Z"]


def test_a_lease_is_held_while_the_command_runs_and_ended_after(home: Path, now) -> None:
    seen = home / "seen.json"
    result = run_cli(
        "keepalive",
        "--reason",
        "build",
        "--",
        "sh",
        "-c",
        f"cat {home / activity.LEASES} > {seen}; exit 7",
    )
    assert result.code == 7
    [held] = json.loads(seen.read_text())["leases"]
    assert held["reason"] == "build"
    assert held["until"] == "2026-11-02T10:00:00Z"  # an hour ahead, renewed while it runs
    assert leases(home) == []


def test_renewal_moves_the_lease_and_a_limit_ends_it(home: Path, now, monkeypatch) -> None:
    # Each renewal happens 40 minutes later on the test's clock.
    monkeypatch.setattr(keepalive, "RENEW_SECONDS", 0.2)
    renew = keepalive._renew

    def later(*args):
        now.advance(minutes=40)
        renew(*args)

    monkeypatch.setattr(keepalive, "_renew", later)
    seen = home / "seen.json"
    script = f"sleep 0.5; cat {home / activity.LEASES} > {seen}"
    assert keepalive.hold(home, ["sh", "-c", script], "", limit=None) == 0
    [renewed] = json.loads(seen.read_text())["leases"]
    assert renewed["until"] > "2026-11-02T10:00:00Z"
    assert renewed["createdAt"] == "2026-11-02T09:00:00Z"

    # With --for 30m the lease ends after 30 minutes, though the command still runs.
    assert keepalive.hold(home, ["sh", "-c", script], "", limit=clock.parse_duration("30m")) == 0
    assert json.loads(seen.read_text())["leases"] == []


@pytest.mark.parametrize("text", ["", "48", "h", "2y", "-1d"])
def test_durations_are_checked(text: str) -> None:
    with pytest.raises(UsageError, match="is not a duration"):
        clock.parse_duration(text)


def test_a_damaged_lease_file_is_reported(home: Path) -> None:
    (home / activity.LEASES).write_text("nonsense")
    result = run_cli("keepalive", "--for", "2h")
    assert result.code == 2
    assert "is not a lease file" in result.err
