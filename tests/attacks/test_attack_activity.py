"""carol writes hostile activity and lease files on her volume; bob's container is still warned.

Each hostile file must read as *unknown* for carol's container (which counts as activity, so
nothing happens to it), and must not stop the run: bob's idle container is warned in the same
run, the run exits 0 (an unreadable record is not a failure of devbox), and nothing reaches
the output as a traceback. tests/attacks/attack_volume_support.py says what is real here.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from attack_volume_support import (
    CAROL,
    DAY0,
    attack_clock,
    declare,
    idle_witness,
    record,
    stamp,
    witness_warned,
    write_state,
)

from devbox.container import activity

pytestmark = pytest.mark.slow  # a whole host each

__all__ = ["attack_clock"]  # a fixture, used by name

NOW = DAY0 + timedelta(days=6, minutes=1)  # bob's container is due its 24-hour warning


def _record(**changes: object) -> bytes:
    body = record("evil", DAY0, NOW)
    for key, value in changes.items():
        body["monitor"][key] = value
    return json.dumps(body).encode()


def _lease(**fields: str) -> bytes:
    lease = {"id": "x", "until": stamp(NOW), "reason": "r", "createdAt": stamp(NOW)} | fields
    return json.dumps({"version": 1, "leases": [lease]}).encode()


HOSTILE = {
    "deeply nested record": ("activity.json", b"[" * 200_000),
    "deeply nested object": ("activity.json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    "huge interval": ("activity.json", _record(intervalSeconds=10**18)),
    "year 1 with an offset": ("activity.json", _record(startedAt="0001-01-01T00:00:00+05:00")),
    "year 9999 behind UTC": ("activity.json", _record(updatedAt="9999-12-31T23:59:59-05:00")),
    "a number of 4,000 digits": ("activity.json", _record(intervalSeconds=int("9" * 4000))),
    "deeply nested keep-alive": ("keepalive.json", b'{"version": 1, "leases": ' + b"[" * 100_000),
    "lease until the end of time": ("keepalive.json", _lease(until="9999-12-31T23:59:59-23:59")),
    "lease from year 1": ("keepalive.json", _lease(createdAt="0001-01-01T00:00:00+23:59")),
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_a_hostile_activity_file_is_unknown_and_never_stops_the_run(
    host, attack_clock, attack: str
) -> None:
    file, content = HOSTILE[attack]
    evil = declare(host, "evil", "carol", CAROL)  # both created on day 0
    work = idle_witness(host, NOW)
    if file == "keepalive.json":
        write_state(evil, "activity.json", json.dumps(record("evil", DAY0, NOW)).encode(), CAROL)
    write_state(evil, file, content, CAROL)
    attack_clock.now = NOW

    result = host.cli("cleanup")

    assert result.code == 0, result.out + result.err
    assert "Traceback" not in result.out + result.err
    assert "evil (carol, running): nothing to do" in result.out
    assert "counted as activity now" in result.out
    witness_warned(host, work)
    assert not (evil / ".local/state/devbox/notice").exists()


def test_a_dry_run_over_a_hostile_file_shows_every_container(host, attack_clock) -> None:
    evil = declare(host, "evil", "carol", CAROL)
    write_state(evil, "activity.json", b"[" * 200_000, CAROL)
    idle_witness(host, NOW)
    attack_clock.now = NOW

    result = host.cli("cleanup", "--dry-run", "--json")

    assert result.code == 0, result.out + result.err
    rows = {row["name"]: row for row in result.json()["containers"]}
    assert rows["evil"]["action"] == "none"
    assert rows["work"]["action"] == "warn-stop"


def test_a_container_whose_assessment_fails_is_reported_logged_and_skipped(
    host, attack_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong with one container (here: a fault in reading carol's activity,
    standing in for a defect no test foresaw), the others are done and the run says so."""
    declare(host, "evil", "carol", CAROL)
    work = idle_witness(host, NOW)
    attack_clock.now = NOW
    original = activity.observe

    def faulty(*args: object, **kwargs: object) -> activity.Observation:
        if kwargs.get("container") == "evil":
            raise RuntimeError("\x1b[31mfault\nforged line")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(activity, "observe", faulty)

    result = host.cli("cleanup")

    assert result.code == 3, result.out + result.err
    assert (
        "evil (carol, running): nothing to do  FAILED: RuntimeError: \\x1b[31mfault" in result.out
    )
    assert "\x1b" not in result.out + result.err
    witness_warned(host, work)
    failed = [e for e in host.cli("events", "--json").json() if e["action"] == "cleanup-failed"]
    assert [(e["container"], e["owner"]) for e in failed] == [("evil", "carol")]
