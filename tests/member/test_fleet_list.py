"""A fleet's `list` on the control host: a single host's columns, each row with its host.

Each row is the container's host's own `list --json` answer (its lifecycle assessment: last
activity, idle stop, destroy); a row the control host makes from the declaration alone, for a
host that did not answer, says "unknown" for what only the host can tell. Simulated fleet of
tests/fleet.py (real podman, Quadlet, Nix and each host's devbox-ctl).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from devbox.cli import list_
from devbox.tools import ssh
from fleet import Fleet
from host import KEY

MINUTE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def pair(fleet_of) -> Fleet:  # type: ignore[no-untyped-def]
    """alpha and beta: web (alice) running on alpha, api (bob) stopped on beta, both idle."""
    fleet: Fleet = fleet_of(("alpha", "beta"))
    fleet.declare([])
    for name in fleet.hosts:
        fleet.deploy(name)
    now = datetime.now(UTC).replace(microsecond=0)
    created, idle = _stamp(now - timedelta(days=3)), _stamp(now - timedelta(days=2))
    fleet.declare(
        [
            {"name": "web", "owner": "alice", "host": "alpha", "created": created},
            {
                "name": "api",
                "owner": "bob",
                "host": "beta",
                "state": "stopped",
                "created": created,
                "stoppedAt": idle,
            },
        ]
    )
    _answered(fleet.ssh("alpha", "fleet-host", "set-key", "web", "--owner", "alice", stdin=KEY))
    fleet.idle_volume("alpha", "web", 1001, since=idle)
    fleet.idle_volume("beta", "api", 1002, since=idle)
    for name in fleet.hosts:
        fleet.deploy(name)
    return fleet


def _answered(reply: ssh.Reply | ssh.Unreachable) -> ssh.Reply:
    """A member's answer with exit 0."""
    assert isinstance(reply, ssh.Reply), reply
    assert reply.ok, reply
    return reply


def _table(out: str) -> list[list[str]]:
    """The table's lines as cells (columns are two spaces apart or more)."""
    return [re.split(r"\s{2,}", line.rstrip()) for line in out.splitlines() if line[:1] != "!"]


def _minute(timestamp: str | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromisoformat(timestamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def test_the_columns_are_a_single_hosts_with_the_host(pair: Fleet) -> None:
    listed = pair.control.cli("list", "--all")
    assert listed.code == 0, listed.err
    header, *rows = _table(listed.out)
    assert header == ["HOST", *list_.COLUMNS]
    by_name = {row[1]: dict(zip(header, row, strict=True)) for row in rows}
    assert set(by_name) == {"web", "api"}
    # web runs with a record its monitor stopped updating two days ago (the test image has no
    # monitor): its activity is unknown on alpha, said so, not the current minute.
    assert by_name["web"]["LAST ACTIVITY"] == "unknown", by_name["web"]
    for row in by_name.values():
        for column in ("LAST ACTIVITY", "IDLE STOP", "DESTROY"):
            if (row["NAME"], column) != ("web", "LAST ACTIVITY"):
                assert row[column] == "-" or MINUTE.fullmatch(row[column]), (column, row)
    # The stopped one's columns are its host's assessment: idle since it stopped, destroyed
    # stoppedDestroyDays after that (the running one's activity is read live, so it moves).
    (own,) = json.loads(_answered(pair.ssh("beta", "list", "--all", "--json")).stdout)
    api = by_name["api"]
    assert (api["LAST ACTIVITY"], api["IDLE STOP"], api["DESTROY"]) == (
        _minute(own["lastActivity"]),
        "-",
        _minute(own["destroyAt"]),
    )
    assert MINUTE.fullmatch(api["DESTROY"]), api


def test_created_is_shown_whole(pair: Fleet) -> None:
    listed = pair.control.cli("list", "--all")
    assert listed.code == 0, listed.err
    header, *rows = _table(listed.out)
    column = header.index("CREATED")
    records = {r["name"]: r for r in pair.control.records()}
    for row in rows:
        # To the minute, as on a single host; not cut off with an ellipsis.
        assert row[column] == _minute(records[row[1]]["created"]), row
    assert "…" not in listed.out


def test_the_activity_columns_are_the_hosts_own_answer(pair: Fleet) -> None:
    listed = pair.control.cli("list", "--all", "--json")
    assert listed.code == 0, listed.err
    rows = {row["name"]: row for row in json.loads(listed.out)["containers"]}
    for host, name in (("alpha", "web"), ("beta", "api")):
        (own,) = json.loads(_answered(pair.ssh(host, "list", "--all", "--json")).stdout)
        # lastActivity of the running one is read live; the rest is fixed by the records.
        keys = ("created", "idleStopAt", "destroyAt", *(("lastActivity",) if name == "api" else ()))
        for key in keys:
            assert rows[name][key] == own[key], (name, key)
        assert "lastActivity" in rows[name]
    assert rows["api"]["destroyAt"] is not None


def test_a_silent_hosts_rows_say_unknown_not_a_made_up_time(pair: Fleet) -> None:
    pair.down("beta")
    listed = pair.control.cli("list", "--all")
    assert listed.code == 3
    header, *rows = _table(listed.out)
    api = dict(zip(header, next(row for row in rows if row[1] == "api"), strict=True))
    assert api["ACTUAL"] == "unreachable"
    assert (api["LAST ACTIVITY"], api["IDLE STOP"], api["DESTROY"]) == ("unknown",) * 3
    # CREATED is the declaration's, which the control host holds.
    created = next(r for r in pair.control.records() if r["name"] == "api")["created"]
    assert api["CREATED"] == _minute(created)
    web = dict(zip(header, next(row for row in rows if row[1] == "web"), strict=True))
    # alpha answered for its own: web's activity is unknown there too (its record is stale),
    # but no idle stop is scheduled ("-"), not the "unknown" of a row made from the declaration.
    assert (web["LAST ACTIVITY"], web["IDLE STOP"]) == ("unknown", "-"), web
    document = json.loads(pair.control.cli("list", "--all", "--json").out)
    silent = next(row for row in document["containers"] if row["name"] == "api")
    assert [silent[key] for key in ("lastActivity", "idleStopAt", "destroyAt")] == ["unknown"] * 3
