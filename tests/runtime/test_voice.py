"""Every line a verb prints on a host is true (tests/host.py: real git, Nix, podman, Quadlet).

logs speaks devbox's exit codes and points to the journal for a container that is gone;
unknown activity is "unknown", not the current minute; a mistyped name, an empty snapshot
list, a size above the policy, and every commit say what is so.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devbox.container import activity
from host import Host

ALICE, BOB = 1001, 1002


def _volume_of(host: Host, name: str, owner_uid: int) -> Path:
    """The volume's home as its owner's rootless podman has it (dev is uid 1000 inside)."""
    made = host.podman("volume", "create", f"{name}-data")
    assert made.returncode == 0, made.stderr
    mountpoint = host.podman("volume", "inspect", f"{name}-data", "--format", "{{.Mountpoint}}")
    home = Path(mountpoint.stdout.strip())
    (home / activity.STATE).mkdir(parents=True)
    dev = owner_uid * 65536 + 999
    for path in (home, *home.rglob("*")):
        os.chown(path, dev, dev, follow_symlinks=False)
    return home


def test_logs_of_a_container_that_is_gone_names_its_journal(host: Host) -> None:
    """Quadlet's --rm takes a dead container's podman logs: the unit's journal keeps them."""
    assert host.cli("create", "web", "--owner", "alice", "--no-apply").code == 0
    result = host.cli("logs", "web")
    assert result.code == 3, result.out + result.err
    lines = result.err.splitlines()
    assert lines[0].startswith("error: web has no container now, so podman has no logs of it")
    assert lines[1] == (
        "hint: its unit's journal has what it printed: journalctl --user -u "
        "container-web.service (as alice), or as root: journalctl --user -M alice@ -u "
        "container-web.service"
    )
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), result.err
    assert "Error: " not in result.err  # podman's own words are not passed on raw


def test_logs_of_anothers_container_is_not_allowed(host: Host) -> None:
    assert host.cli("create", "web", "--owner", "alice", "--no-apply").code == 0
    result = host.cli("logs", "web", uid=BOB)
    assert result.code == 4
    assert result.err.startswith("error: bob may not read the logs of web")


def test_status_of_a_missing_container_points_to_the_journal_not_to_logs(host: Host) -> None:
    assert host.cli("create", "web", "--owner", "alice", "--no-apply").code == 0
    result = host.cli("status", "web")
    assert result.code == 1
    assert "devbox-ctl logs web shows why" not in result.out
    assert (
        "declared running but it is missing: its unit's journal shows why: "
        "journalctl --user -u container-web.service (as alice)" in result.out
    )


def test_unreadable_activity_is_listed_as_unknown_not_as_now(host: Host) -> None:
    assert host.cli("create", "web", "--owner", "alice", "--no-apply").code == 0
    home = _volume_of(host, "web", ALICE)
    (home / activity.RECORD).write_text("not an activity record")
    listed = host.cli("list", "--all")
    assert listed.code == 0, listed.err
    header, row = listed.out.splitlines()[:2]
    column = header.index("LAST ACTIVITY")
    assert row[column:].split()[0] == "unknown", listed.out
    assert not re.search(r"\d\d:\d\d", row[column : column + 16]), listed.out
    [shown] = host.cli("list", "--all", "--json").json()
    assert shown["lastActivity"] == "unknown"
    status = host.cli("status", "web")
    assert "  activity:   last unknown; idle stop -;" in status.out, status.out


def test_a_mistyped_name_offers_root_every_container_not_yours(host: Host) -> None:
    assert host.cli("create", "web", "--owner", "alice", "--no-apply").code == 0
    assert host.cli("create", "api", "--owner", "bob", "--no-apply").code == 0
    as_root = host.cli("status", "nosuch")
    assert as_root.code == 2
    assert "yours" not in as_root.err
    assert as_root.err.rstrip().endswith("no container is named 'nosuch'; declared: api, web")
    as_bob = host.cli("status", "nosuch", uid=BOB)
    assert as_bob.err.rstrip().endswith("no container is named 'nosuch'; yours: api")


def test_restore_list_without_snapshots_says_so(host: Host) -> None:
    result = host.cli("restore", "--list")
    assert (result.code, result.out) == (0, "No snapshots.\n"), result.err
    result = host.cli("restore", "--list", "web")
    assert (result.code, result.out) == (0, "No snapshots of web.\n"), result.err


def test_a_cpu_above_the_policy_is_blamed_on_the_option(host: Host) -> None:
    """Not on containers[N].cpu, a record that does not exist yet."""
    result = host.cli("create", "web", "--owner", "alice", "--cpu", "999", "--no-apply")
    assert result.code == 2, result.err
    assert result.err.startswith("error: --cpu: 999 is more than maxCpu (")
    assert "containers.json" not in result.err
    result = host.cli("create", "web", "--owner", "alice", "--memory", "9999G", "--no-apply")
    assert result.code == 2, result.err
    assert result.err.startswith('error: --memory: "9999G" is more than maxMemory (')
    assert host.records() == []


def test_every_commit_names_who_asked_the_same_way(host: Host) -> None:
    """root's create for alice, root's pin, alice's own create: the subject names the caller."""
    assert host.cli("create", "web", "--owner", "alice", "--no-apply").code == 0
    [created] = host.git_log()[:1]
    assert created.startswith("devbox: root created web for alice\n")
    assert "Requested by root with devbox-ctl." in created
    pinned = host.cli("pin", "web", "--until", "2099-01-01", "--reason", "demo")
    assert pinned.code in (0, 2), pinned.err  # too far ahead is refused: pin within the limit
    if pinned.code == 2:
        day = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
        assert host.cli("pin", "web", "--until", day, "--reason", "demo").code == 0
    assert host.git_log()[0].startswith("devbox: root pinned web")
    assert host.cli("create", "api", "--no-apply", uid=BOB).code == 0
    own = host.git_log()[0]
    assert own.startswith("devbox: bob created api\n")
    assert "Requested by bob with devbox-ctl." in own
