"""carol writes escape sequences and forged lines into her activity and lease files.

Signal names and lease reasons are hers. `cleanup --dry-run`, `status --why`, the event log
and `events` must show them escaped: no escape sequence, carriage return, bidirectional
override or bell reaches a terminal, and no line of hers passes for one of devbox's (a forged
"work (bob, running): DESTROY now" line). The one escaping function is tested on its own
too. tests/attacks/attack_volume_support.py says what is real here.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from attack_volume_support import (
    CAROL,
    DAY0,
    attack_clock,
    declare,
    idle_witness,
    record,
    stamp,
    volume_path,
    witness_warned,
    write_state,
)
from hostile_text import FORGED, HOSTILE_NODE, RAW

from devbox.escaping import shown

__all__ = ["attack_clock"]  # a fixture, used by name

NOW = DAY0 + timedelta(days=6, hours=2)  # both containers are due their stop warning
SIGNAL = f"\x1b[2J\x1b[31mssh\r\n{FORGED}\n\x9b0m"
REASON = f"\x1b]0;owned\x07\u202elive\u2028\r\n{FORGED}"


def hostile_record() -> bytes:
    body = record("evil", DAY0, NOW)
    body["signals"][SIGNAL] = {"lastSeen": stamp(DAY0), "sessions": 1}
    return json.dumps(body).encode()


def hostile_leases() -> bytes:
    lease = {
        "id": "\x1b[8m",
        "until": stamp(DAY0 + timedelta(hours=1)),
        "reason": REASON,
        "createdAt": stamp(DAY0),
    }
    return json.dumps({"version": 1, "leases": [lease]}).encode()


def assert_clean(text: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{raw!r} reached the output"
    forged = [line for line in text.splitlines() if line.lstrip().startswith(FORGED)]
    assert forged == [], "a line of carol's passed for one of devbox's"


@pytest.mark.slow
def test_hostile_names_and_reasons_are_shown_escaped_everywhere(host, attack_clock) -> None:
    evil = declare(host, "evil", "carol", CAROL)
    work = idle_witness(host, NOW)
    write_state(evil, "activity.json", hostile_record(), CAROL)
    write_state(evil, "keepalive.json", hostile_leases(), CAROL)
    attack_clock.now = NOW

    dry = host.cli("cleanup", "--dry-run", uid=CAROL)
    assert dry.code == 0, dry.err
    assert_clean(dry.out + dry.err)
    assert "\\x1b[2J" in dry.out  # still there to see, as text
    why = host.cli("status", "evil", "--why", uid=CAROL)
    assert_clean(why.out + why.err)
    assert "\\x1b[2J" in why.out

    acted = host.cli("cleanup")
    assert acted.code == 0, acted.err
    assert_clean(acted.out + acted.err)
    assert "evil (carol, running): warn: stops at" in acted.out
    witness_warned(host, work)
    log = host.state / "events.jsonl"
    assert_clean(log.read_bytes().decode("utf-8"))
    assert all(byte < 0x80 for byte in log.read_bytes()), "the event log is not plain ASCII"
    listed = host.cli("events")
    assert_clean(listed.out)
    as_json = host.cli("events", "--json").json()
    warning = next(e for e in as_json if e["action"] == "warning" and e["container"] == "evil")
    assert_clean(json.dumps(warning, ensure_ascii=False))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text, spaces and all", "plain text, spaces and all"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("one\ntwo\r\n", "one\\x0atwo\\x0d\\x0a"),
        ("\x9b2J", "\\x9b2J"),
        ("\x7f", "\\x7f"),
        ("\u202eevil", "\\u202eevil"),
        ("\u2028", "\\u2028"),
        ("\U000e0041", "\\U000e0041"),  # a tag character: invisible
        ("λ → ok", "λ → ok"),
    ],
)
def test_the_escaping_function(text: str, expected: str) -> None:
    assert shown(text) == expected
    assert shown(expected) == expected  # printable already: unchanged
    assert shown(shown(text)) == shown(text)


def test_the_escaping_function_bounds_what_it_shows() -> None:
    assert shown("x" * 1000) == "x" * 200 + "…"
    long = shown("\x1b" * 10_000)
    assert len(long) == 201
    assert long.isprintable()
    assert shown(shown("\x1b" * 10_000)) == long


def hostile_answer(volume: Path) -> None:
    answer = volume / ".local/share/tailscale/status-answer"
    answer.parent.mkdir(parents=True, exist_ok=True)
    answer.write_text(json.dumps(HOSTILE_NODE, ensure_ascii=False))


def assert_nothing_raw(text: str) -> None:
    assert not [c for c in RAW if c in text], repr(text)
    assert FORGED not in text.splitlines(), text


def test_a_containers_tailnet_answer_is_shown_escaped(host) -> None:
    """status and connect print what the container's tailscaled said; its owner decides that."""
    assert host.cli("create", "web", "--owner", "alice", "--timeout", "30").code == 0
    hostile_answer(volume_path(host, "web"))
    status = host.cli("status", "web")
    assert status.code in (0, 1), status.err
    assert "tailscale:" in status.out
    assert_nothing_raw(status.out + status.err)
    connect = host.cli("connect", "web")
    assert_nothing_raw(connect.out + connect.err)
    # A bogus address is dropped, not shown.
    assert "\\x1b[31m" not in connect.out
