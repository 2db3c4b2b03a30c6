"""`fleet-host purge` reports what happened, not what it attempted (issue 21): a stop that
failed in the owner's manager stops the purge before anything is removed. The fleet and its
stand-ins are tests/fleet.py's; the failure is the stand-in systemctl's rule."""

from __future__ import annotations

from test_fleet_host import answer, json_of, pair

from fleet import Fleet
from host import KEY

__all__ = ["pair"]  # the fixture, shared with test_fleet_host.py


def test_a_purge_whose_stop_fails_removes_nothing_and_a_rerun_finishes(pair: Fleet) -> None:
    alpha = pair.hosts["alpha"]
    json_of(pair.ssh("alpha", "fleet-host", "set-key", "web", "--owner", "alice", stdin=KEY))
    unreachable = "Failed to connect to user scope bus via machine transport: Connection refused"
    rule = {"match": ["stop"], "exit": 1, "stderr": unreachable + "\n"}
    alpha.stand_ins.rules("systemctl", [rule])
    failed = answer(pair.ssh("alpha", "fleet-host", "purge", "web", "--owner", "alice"))
    assert failed.returncode == 3, failed.stderr
    assert "container-web.service did not stop" in failed.stderr
    assert unreachable in failed.stderr
    assert alpha.podman("volume", "exists", "web-data").returncode == 0
    assert "devbox-web-ts-authkey" in alpha.podman("secret", "ls").stdout
    assert not list((alpha.state / "snapshots").glob("*.tar*"))
    alpha.stand_ins.rules("systemctl", [])
    done = json_of(pair.ssh("alpha", "fleet-host", "purge", "web", "--owner", "alice"))
    assert done["volumeRemoved"] is True
    assert done["snapshot"]
