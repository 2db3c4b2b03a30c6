"""`devbox-ctl snapshots` through the privileged path: users see and prune only their own.

A user lists their snapshots (id, container, date, size on disk and in the archive) and the
quotas, and removes their own; another user's snapshot is refused with exit 4 and stays; an
admin sees and prunes all. On a whole test host (attack_snapshot_support.py).
"""

from __future__ import annotations

import pytest
from attack_snapshot_support import ALICE, BOB, declare_box, snapshot_files

from host import Host

pytestmark = pytest.mark.slow  # a whole host


@pytest.fixture
def two_owners(host: Host) -> Host:
    """One snapshot of alice's and one of bob's."""
    for name, uid in (("mine", BOB), ("hers", ALICE)):
        (declare_box(host, name, uid) / "notes").write_text(f"{name}\n")
        assert host.cli("destroy", name, "--yes", "--no-apply", uid=uid).code == 0
    return host


def test_users_see_only_their_own_snapshots_and_cannot_prune_others(two_owners: Host) -> None:
    listed = two_owners.cli("snapshots", "--json", uid=BOB)
    assert listed.code == 0, listed.err
    shown = listed.json()
    (mine,) = shown["snapshots"]
    assert (mine["container"], mine["owner"]) == ("mine", "bob")
    assert mine["id"].startswith("mine-")
    assert mine["created"].endswith("Z")
    assert mine["size"] > 0
    assert mine["stored"] > 0
    assert set(shown["quotas"]["users"]) == {"bob"}
    assert shown["quotas"]["users"]["bob"] == {
        "count": 1,
        "maxCount": 5,
        "stored": mine["stored"],
        "maxStored": 20 * 1024**3,
    }
    assert shown["quotas"]["host"]["count"] == 2
    assert shown["quotas"]["host"]["maxCount"] == 30

    text = two_owners.cli("snapshots", uid=BOB).out
    assert f"{mine['id']}  mine (bob)  {mine['created']}" in text
    assert "hers" not in text
    assert "bob: 1 of 5 snapshots" in text
    assert "the host: 2 of 30 snapshots" in text

    # Someone else's snapshot: refused, and nothing removed.
    hers = two_owners.cli("snapshots", "--json", uid=ALICE).json()["snapshots"]
    theirs = next(s["id"] for s in hers if s["owner"] == "alice")
    before = snapshot_files(two_owners)

    refused = two_owners.cli("snapshots", "--prune", theirs, "--yes", uid=BOB)

    assert refused.code == 4
    assert f"bob may not remove snapshot {theirs}: it belongs to alice" in refused.err
    assert snapshot_files(two_owners) == before
    unknown = two_owners.cli("snapshots", "--prune", "nope", "--yes", uid=BOB)
    assert unknown.code == 2
    assert "no snapshot is named 'nope'" in unknown.err
    # One refused id stops them all: nothing is removed.
    mixed = two_owners.cli("snapshots", "--prune", mine["id"], "--prune", theirs, "--yes", uid=BOB)
    assert mixed.code == 4
    assert snapshot_files(two_owners) == before


def test_users_prune_their_own_after_a_question_and_admins_any(
    two_owners: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    mine = two_owners.cli("snapshots", "--json", uid=BOB).json()["snapshots"][0]["id"]
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    answered_no = two_owners.cli("snapshots", "--prune", mine, uid=BOB)
    assert answered_no.code == 2
    assert f"Remove {mine} for good" in answered_no.err
    assert len(two_owners.cli("snapshots", "--json", uid=BOB).json()["snapshots"]) == 1

    everything = two_owners.cli("snapshots", "--json", uid=ALICE).json()["snapshots"]
    assert sorted(s["owner"] for s in everything) == ["alice", "bob"]
    mine = next(s["id"] for s in everything if s["owner"] == "bob")
    hers = next(s["id"] for s in everything if s["owner"] == "alice")

    pruned = two_owners.cli("snapshots", "--prune", mine, "--yes", uid=BOB)

    assert pruned.code == 0, pruned.err
    assert pruned.out == f"Removed snapshot {mine} (mine, bob).\n"
    assert two_owners.cli("snapshots", "--json", uid=BOB).json()["snapshots"] == []
    assert two_owners.cli("snapshots", "--prune", hers, "--yes", uid=ALICE).code == 0
    assert snapshot_files(two_owners) == []
    events = two_owners.cli("events", "--json").json()
    removed = [(e["actor"], e["snapshot"]) for e in events if e["action"] == "remove-snapshot"]
    assert removed == [("bob", mine), ("alice", hers)]
