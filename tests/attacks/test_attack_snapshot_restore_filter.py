"""Attacks on restore's filter: archive names and links that walk around the dropped paths.

A restored container must enroll as a new Tailscale node, so restore leaves out
`.local/share/tailscale` (the old node's identity) and the old login notice. The filter
compares normalised paths, so `./`, `.` and `..` components, doubled and leading slashes
and a PAX path header do not get around it, and it refuses links that would lead a dropped
path elsewhere (a symlink in its place or on its way, a member below a link, a hard link to a
dropped file).

Each archive goes through `devbox-ctl restore` as its owner on a whole test host, into a real
podman volume (attack_snapshot_support.py says what is real).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from attack_snapshot_support import (
    BOB,
    NODE_STATE,
    Member,
    archive,
    mountpoint,
    plant_snapshot,
)

from devbox.lifecycle import snapshots
from host import Host

pytestmark = pytest.mark.slow  # a whole host each

STATE = ".local/share/tailscale/tailscaled.state"
NOTICE = ".local/state/devbox/notice"
DIR = tarfile.DIRTYPE
SYMLINK = tarfile.SYMTYPE
HARDLINK = tarfile.LNKTYPE


def _dirs(*names: str) -> list[Member]:
    return [Member(name, DIR) for name in names]


HOME = _dirs(".local", ".local/share", ".local/state", ".local/state/devbox")
WORK = Member("notes", data=b"keep me\n")

ARCHIVES = {
    "dot-slash-and-dot": [
        *HOME,
        Member("./.local/share/./tailscale", DIR),
        Member("./.local/share/./tailscale/tailscaled.state", data=NODE_STATE),
    ],
    "dot-dot-inside": [*HOME, Member("a", DIR), Member(f"a/../{STATE}", data=NODE_STATE)],
    "leading-slash": [*HOME, Member(f"/{STATE}", data=NODE_STATE)],
    "double-slash": [*HOME, Member(".local//share//tailscale//tailscaled.state", data=NODE_STATE)],
    "dot-dot-through-the-dropped-dir": [
        *HOME,
        Member(".local/share/tailscale/../tailscale/tailscaled.state", data=NODE_STATE),
    ],
    "pax-path-header": [
        *HOME,
        Member("innocent", data=NODE_STATE, pax={"path": f"./{STATE}"}),
    ],
    "notice": [*HOME, Member("./.local/state/./devbox/notice", data=b"DESTROY now\n")],
    "symlink-as-the-dropped-dir": [
        *HOME,
        Member("stash", DIR),
        Member("stash/tailscaled.state", data=NODE_STATE),
        Member(".local/share/tailscale", SYMLINK, link="../../stash"),
    ],
    "symlink-on-the-way": [
        Member(".local", DIR),
        Member("stash", DIR),
        Member("stash/tailscale", DIR),
        Member("stash/tailscale/tailscaled.state", data=NODE_STATE),
        Member(".local/share", SYMLINK, link="../stash"),
    ],
    "member-below-a-symlink": [
        *HOME,
        Member("x", SYMLINK, link=".local/share"),
        Member("x/tailscale", DIR),
        Member("x/tailscale/tailscaled.state", data=NODE_STATE),
    ],
    "hard-link-to-a-dropped-file": [
        *HOME,
        Member(".local/share/tailscale", DIR),
        Member(STATE, data=NODE_STATE),
        Member("copy", HARDLINK, link="./.local/share/./tailscale/tailscaled.state"),
    ],
    "hard-link-into-the-dropped-dir": [
        *HOME,
        Member("stash", data=NODE_STATE),
        Member(".local/share/tailscale", DIR),
        Member("./.local/share/tailscale/./tailscaled.state", HARDLINK, link="stash"),
    ],
    "escapes": [
        Member("../../outside", data=b"escape"),
        Member("a/../../outside", data=b"escape"),
        Member("link", HARDLINK, link="../../etc/passwd"),
    ],
}


def _restored_node_state(home: Path) -> bool:
    """Whether the restored volume gives tailscaled a state file (links followed inside)."""
    path = home / STATE
    try:
        resolved = path.resolve()
    except OSError:
        return False
    return resolved.is_relative_to(home) and resolved.is_file()


@pytest.mark.parametrize("case", ARCHIVES, ids=list(ARCHIVES))
def test_restore_leaves_out_the_node_state_however_it_is_named(host: Host, case: str) -> None:
    plant_snapshot(host, "box", "bob", archive([WORK, *ARCHIVES[case]]))

    result = host.cli("restore", "box", "--no-apply", uid=BOB)

    assert result.code == 0, result.out + result.err
    home = mountpoint(host, "box-data")
    assert (home / "notes").read_bytes() == b"keep me\n", "the user's files are restored"
    assert not _restored_node_state(home)
    assert not (home / NOTICE).exists()
    for parent in (".local", ".local/share"):
        assert not (home / parent).is_symlink()
    assert not (home / "copy").exists() or (home / "copy").read_bytes() != NODE_STATE
    assert not (home.parent / "outside").exists()
    assert not (home.parent.parent / "outside").exists()


def test_the_filter_keeps_ordinary_members_and_links(tmp_path: Path) -> None:
    # What podman's export writes for a home with links in it passes unchanged.
    source = tmp_path / "snapshot.tar"
    source.write_bytes(
        archive(
            [
                Member(".local", DIR),
                Member(".local/share", DIR),
                Member(".local/share/app", DIR),
                Member(".local/share/app/data", data=b"app data"),
                Member("project", DIR),
                Member("project/main.py", data=b"print('hi')\n"),
                Member("project/link", SYMLINK, link="main.py"),
                Member("project/same", HARDLINK, link="project/main.py"),
                Member("up", SYMLINK, link="../../etc/passwd"),
            ]
        )
    )
    copied = tmp_path / "copy.tar"
    with copied.open("wb") as into:
        snapshots._filtered(source, into)
    with tarfile.open(copied) as result:
        kept = {(m.name, m.type, m.linkname) for m in result}
    assert kept == {
        (".local", DIR, ""),
        (".local/share", DIR, ""),
        (".local/share/app", DIR, ""),
        (".local/share/app/data", tarfile.REGTYPE, ""),
        ("project", DIR, ""),
        ("project/main.py", tarfile.REGTYPE, ""),
        ("project/link", SYMLINK, "main.py"),
        ("project/same", HARDLINK, "project/main.py"),
        # A symlink's target is the user's business inside their container: kept as it is.
        ("up", SYMLINK, "../../etc/passwd"),
    }


@pytest.mark.parametrize(
    "name",
    [
        STATE,
        f"./{STATE}",
        "./.local/share/./tailscale/tailscaled.state",
        "a/../.local/share/tailscale",
        "/.local/share/tailscale",
        ".local/share/tailscale/",
        ".local//share/tailscale/x",
        "./.local/state/./devbox/notice",
        "../outside",
        "a/../../outside",
    ],
)
def test_dropped_names_are_compared_normalised(name: str) -> None:
    assert snapshots._dropped(name)


@pytest.mark.parametrize("name", ["notes", ".local/share/tailscale2", ".local/share", "a/..b"])
def test_other_names_are_not_dropped(name: str) -> None:
    assert not snapshots._dropped(name)
