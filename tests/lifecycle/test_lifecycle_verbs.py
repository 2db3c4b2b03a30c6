"""pin, unpin, events, cleanup and restore through devbox-ctl on a whole test host.

tests/host.py says what is real there and what is stood in for; users act through the
privileged path (host.cli(..., uid=…)), root as the system.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lifecycle_support import as_rootless, fake_proc, git, repository

from devbox.container import activity, monitor

ALICE, BOB = 1001, 1002
pytestmark = pytest.mark.slow  # a whole host each


@pytest.fixture
def web(host, now):
    """alice's web, created on day 0 and watched by its monitor since."""
    assert host.cli("create", "web", "--owner", "alice", "--timeout", "30").code == 0
    return host


def home(host, name: str = "web") -> Path:
    """The volume's directory, owned as alice's rootless podman would have it."""
    out = host.podman("volume", "inspect", f"{name}-data", "--format", "{{.Mountpoint}}")
    return as_rootless(Path(out.stdout.strip()))


def tick(host, now, tmp_path: Path, name: str = "web") -> None:
    """One write of the container's monitor, as the image's would make it."""
    monitor.Monitor(home(host, name), name, proc=fake_proc(tmp_path / "proc", [])).tick()


def test_pins_are_the_owners_and_the_admins_within_the_limits(web, now) -> None:
    assert web.cli("create", "api", "--owner", "bob", "--timeout", "30").code == 0
    mine = web.cli("pin", "api", "--until", "2026-12-24", "--reason", "fine-tuning run", uid=BOB)
    assert mine.code == 0, mine.err
    assert mine.out == "Pinned api until the end of 2026-12-24 (UTC): fine-tuning run\n"
    api = next(r for r in web.records() if r["name"] == "api")
    assert api["pin"] == {"until": "2026-12-24", "reason": "fine-tuning run"}
    assert web.git_log()[0].startswith("devbox: bob pinned api until 2026-12-24: fine-tuning run")

    other = web.cli("pin", "web", "--until", "2026-12-24", "--reason", "x", uid=BOB)
    assert other.code == 4
    assert "bob may not pin web: it belongs to alice" in other.err

    too_far = web.cli("pin", "web", "--until", "2027-06-01", "--reason", "x", uid=ALICE)
    assert too_far.code == 2
    assert "a pin reaches at most 90 days ahead: 2027-01-31" in too_far.err
    past = web.cli("pin", "web", "--until", "2026-11-01", "--reason", "x", uid=ALICE)
    assert "2026-11-01 has passed" in past.err
    empty = web.cli("pin", "web", "--until", "2026-11-30", "--reason", " ", uid=ALICE)
    assert "--reason is empty" in empty.err

    # An admin pins any container; bob's pins count against bob's limit (2).
    assert web.cli("pin", "web", "--until", "2026-11-30", "--reason", "demo").code == 0
    listed = web.cli("pin", "--list", "--json", uid=ALICE).json()
    assert [p["name"] for p in listed] == ["api", "web"]
    assert [p["name"] for p in web.cli("pin", "--list", "--json", uid=BOB).json()] == ["api"]

    assert web.cli("unpin", "api", uid=BOB).out == "Unpinned api.\n"
    assert web.cli("unpin", "api", uid=BOB).out == "api was not pinned.\n"
    actions = [
        (e["action"], e["actor"], e["container"]) for e in web.cli("events", "--json").json()
    ]
    assert ("pin", "bob", "api") in actions
    assert ("pin", "root", "web") in actions
    assert ("unpin", "bob", "api") in actions


def test_the_pin_limit_per_user(web, now) -> None:
    for name in ("one", "two", "three"):  # declared only: a pin needs no running container
        assert web.cli("create", name, "--owner", "bob", "--no-apply").code == 0
    for name in ("one", "two"):
        assert web.cli("pin", name, "--until", "2026-11-30", "--reason", "r", uid=BOB).code == 0
    third = web.cli("pin", "three", "--until", "2026-11-30", "--reason", "r", uid=BOB)
    assert third.code == 2
    assert "bob already holds 2 pins (one, two), the limit of 2" in third.err
    assert "devbox-ctl unpin one" in third.err


def test_users_see_their_own_events_and_filter_them(web, now) -> None:
    now.advance(days=1)
    assert web.cli("create", "api", "--owner", "bob", "--timeout", "30").code == 0
    assert [e["container"] for e in web.cli("events", "--json", uid=BOB).json()] == ["api"]
    assert len(web.cli("events", "--json", uid=ALICE).json()) == 2
    assert [e["container"] for e in web.cli("events", "--json", "--since", "12h").json()] == ["api"]
    assert [
        e["container"] for e in web.cli("events", "--json", "--since", "2026-11-02").json()
    ] == ["web", "api"]
    text = web.cli("events", "--container", "web").out
    assert text.startswith("2026-11-02T09:00:00Z  create           web                  by root")
    assert web.cli("events", "--since", "yesterday").code == 2


def test_only_admins_run_cleanup_and_users_dry_run_their_own(web, now, tmp_path: Path) -> None:
    tick(web, now, tmp_path)
    refused = web.cli("cleanup", uid=BOB)
    assert refused.code == 4
    assert "bob may not run cleanup" in refused.err
    assert web.cli("cleanup", "--dry-run", "--json", uid=BOB).json()["containers"] == []
    rows = web.cli("cleanup", "--dry-run", "--json", uid=ALICE).json()["containers"]
    assert [(r["name"], r["action"]) for r in rows] == [("web", "none")]


def test_cleanup_never_acts_on_what_it_cannot_read(web, now, tmp_path: Path) -> None:
    tick(web, now, tmp_path)
    (home(web) / activity.RECORD).write_text("{garbage")
    now.advance(days=60)
    result = web.cli("cleanup")
    assert result.code == 0, result.err
    assert "web (alice, running): nothing to do" in result.out
    assert "the activity record cannot be used: not JSON" in result.out
    assert web.running() == ["web"]


def test_activity_after_a_warning_makes_it_obsolete(web, now, tmp_path: Path) -> None:
    tick(web, now, tmp_path)
    web.podman("exec", "web", "true")
    now.advance(days=6)
    tick(web, now, tmp_path)  # the monitor writes on; nothing was used (its start is day 6)
    record = json.loads((home(web) / activity.RECORD).read_text())
    record["signals"]["start"]["lastSeen"] = "2026-11-02T09:00:00Z"
    (home(web) / activity.RECORD).write_text(json.dumps(record))
    assert "warned (stop, 24 h ahead)" in web.cli("cleanup").out
    assert (home(web) / activity.NOTICE).exists()
    # alice logs in: the stop moves a week away, the old warning goes.
    proc = fake_proc(tmp_path / "proc", [["/bin/tailscaled", "be-child", "ssh"]])
    now.advance(hours=1)
    monitor.Monitor(home(web), "web", proc=proc).tick()
    result = web.cli("cleanup")
    assert "web (alice, running): nothing to do  -> removed an obsolete warning" in result.out
    assert not (home(web) / activity.NOTICE).exists()


def test_a_stopped_container_without_a_stop_time_gets_one(web, now) -> None:
    records = json.loads((web.repo / "devbox/containers.json").read_text())
    records["containers"][0]["state"] = "stopped"
    (web.repo / "devbox/containers.json").write_text(json.dumps(records))
    now.advance(days=30)
    result = web.cli("cleanup")
    assert "web (alice, stopped): nothing to do  -> recorded now as its stop time" in result.out
    assert web.records()[0]["stoppedAt"] == "2026-12-02T09:00:00Z"
    assert web.git_log()[0].startswith("devbox: cleanup recorded the stop time of web")


def test_unpushed_work_refuses_the_destroy_once_and_tells_the_owner(
    web, now, tmp_path: Path
) -> None:
    tick(web, now, tmp_path)
    repository(home(web), "project", None)  # commits on no remote
    git(home(web) / "project", "config", "user.name", "alice")
    assert web.cli("stop", "web").code == 0  # stopped 2026-11-02 09:00: destroy due on the 16th
    for day in (13, 15):  # the warnings, 72 and 24 hours ahead
        now.now = now.now.replace(day=day)
        assert "warned (destroy" in web.cli("cleanup").out
    now.now = now.now.replace(day=16)
    result = web.cli("cleanup")
    assert "refuse to destroy: unsaved work  -> refused to destroy; told the owner" in result.out
    assert "work on the volume: ~/project: 1 commit on no remote" in result.out
    notice = (home(web) / activity.NOTICE).read_text()
    assert "devbox did NOT destroy the stopped container web" in notice
    assert "Unsaved work: ~/project: 1 commit on no remote" in notice
    again = web.cli("cleanup")
    assert "-> refused to destroy (the owner was told)" in again.out
    assert web.records()[0]["name"] == "web"
    assert [e["warning"] for e in web.cli("events", "--json").json() if "warning" in e][-1] == (
        "refuse"
    )


def test_restore_under_a_new_name_and_the_checks_before_it(web, now, tmp_path: Path) -> None:
    (home(web) / "notes").write_text("keep me\n")
    assert web.cli("destroy", "web", "--yes").code == 0
    assert web.cli("restore", "web", "--as", "web2", uid=BOB).code == 4
    listed = web.cli("restore", "--list", "--json", uid=ALICE).json()
    assert [(s["container"], s["owner"]) for s in listed] == [("web", "alice")]
    assert web.cli("restore", "--list", "--json", uid=BOB).json() == []
    assert "no snapshot nope of web" in web.cli("restore", "web", "--from", "nope").err

    done = web.cli("restore", "web", "--as", "web2", "--timeout", "30", uid=ALICE)
    assert done.code == 0, done.err
    assert (home(web, "web2") / "notes").read_text() == "keep me\n"
    assert [r["name"] for r in web.records()] == ["web2"]
    assert "devbox: alice restored web2 from snapshot web-20261102T090000Z" in web.git_log()[0]
    again = web.cli("restore", "web", "--as", "web2")
    assert again.code == 2
    assert "a container named web2 exists" in again.err
