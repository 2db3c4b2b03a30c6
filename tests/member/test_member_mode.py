"""A fleet member: its declaration is its deployed slice; it reads, and refuses to change it.

The member runs its own devbox-ctl (reached over OpenSSH, its own sshd, tests/fleet.py) with
config.json role "member" and no config repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devbox import privileged
from devbox.container import activity
from devbox.errors import InputError
from devbox.host import deployed
from devbox.tools import ssh
from fleet import Fleet
from support import REPO, run_cli

REFUSAL = "error: this host is a member of a fleet: run devbox-ctl on the control host\n"
CHANGING = [
    ["create", "new", "--owner", "alice"],
    ["start", "web"],
    ["stop", "web"],
    ["destroy", "web", "--yes"],
    ["pin", "web", "--until", "2099-01-01", "--reason", "demo"],
    ["unpin", "web"],
    ["restore", "web"],
    ["rotate-key", "web"],
]


def reply(result: ssh.Reply | ssh.Unreachable) -> ssh.Reply:
    assert isinstance(result, ssh.Reply), result
    return result


@pytest.fixture
def member(fleet_of) -> Fleet:  # type: ignore[no-untyped-def]
    """alpha, a member with web (alice, stopped) and api (bob, stopped) deployed."""
    fleet: Fleet = fleet_of(("alpha",))
    fleet.declare(
        [
            {"name": "web", "owner": "alice", "state": "stopped", "host": "alpha"},
            {"name": "api", "owner": "bob", "state": "stopped", "memory": "2G", "host": "alpha"},
        ]
    )
    fleet.deploy("alpha")
    return fleet


def test_read_verbs_answer_from_the_deployed_slice(member: Fleet) -> None:
    listed = reply(member.ssh("alpha", "list", "--all", "--json"))
    assert listed.ok, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert sorted(rows) == ["api", "web"]
    assert rows["api"]["owner"] == "bob"
    status = reply(member.ssh("alpha", "status", "web", "--json"))
    # Exit 1: never created here, its volume is missing, as status says of any such container.
    assert status.returncode == 1, status.stderr
    shown = json.loads(status.stdout)
    assert (shown["name"], shown["declared"], shown["volume"]) == ("web", "stopped", False)
    dry = reply(member.ssh("alpha", "cleanup", "--dry-run", "--json"))
    assert dry.ok, dry.stderr
    for verb in (["events"], ["snapshots"], ["pin", "--list"], ["restore", "--list"]):
        assert reply(member.ssh("alpha", *verb)).ok, verb
    missing = reply(member.ssh("alpha", "status", "nothing"))
    assert missing.returncode == 2
    assert str(member.hosts["alpha"].deployed / "manifest.json") in missing.stderr


@pytest.mark.parametrize("argv", CHANGING, ids=" ".join)
def test_changing_verbs_exit_2_and_change_nothing(member: Fleet, argv: list[str]) -> None:
    alpha = member.hosts["alpha"]
    manifest = (alpha.deployed / "manifest.json").read_bytes()
    alpha.stand_ins.clear()
    result = reply(member.ssh("alpha", *argv))
    assert (result.returncode, result.stderr) == (2, REFUSAL)
    assert (alpha.deployed / "manifest.json").read_bytes() == manifest
    assert not (alpha.state / "events.jsonl").exists()
    # Not one program ran on the member: no podman, no systemctl, no rebuild, no 1Password.
    assert alpha.stand_ins.calls() == []


def test_cleanup_on_a_member_assesses_but_leaves_stops_and_destroys_to_the_control_host(
    fleet_of,  # type: ignore[no-untyped-def]
) -> None:
    """The member's own daily run: warnings are its own; its declaration is not."""
    fleet: Fleet = fleet_of(("alpha",))
    old = {"state": "stopped", "stoppedAt": "2020-01-01T00:00:00Z", "host": "alpha"}
    fleet.declare([{"name": "web", "owner": "alice", **old}])
    fleet.deploy("alpha")
    alpha = fleet.hosts["alpha"]
    home = fleet.idle_volume("alpha", "web", 1001, since="2020-01-01T00:00:00Z")
    warned = reply(fleet.ssh("alpha", "cleanup", "--json"))
    assert warned.ok, warned.stderr
    (row,) = json.loads(warned.stdout)["containers"]
    # The warning is the member's to send: it went to the owner's volume.
    assert (row["action"], row["done"]) == ("warn-destroy", "warned (destroy, 24 h ahead)")
    assert "destroyed" in (home / activity.NOTICE).read_text()
    users = fleet.control.repo / "devbox" / "users.nix"
    users.write_text(
        users.read_text().replace(
            "containers = {", "containers = {\n    destroyWarningHours = [ ];"
        )
    )
    fleet.declare([{"name": "web", "owner": "alice", **old}])
    fleet.deploy("alpha")
    manifest = (alpha.deployed / "manifest.json").read_bytes()
    alpha.stand_ins.clear()
    result = reply(fleet.ssh("alpha", "cleanup", "--json"))
    assert result.ok, result.stderr
    (row,) = json.loads(result.stdout)["containers"]
    assert (row["name"], row["action"]) == ("web", "destroy"), row["reasons"]
    assert row["done"] == "assessed here; the control host's cleanup acts on it"
    # Nothing was destroyed, stopped or rebuilt here.
    assert alpha.podman("volume", "exists", "web-data").returncode == 0
    assert (alpha.deployed / "manifest.json").read_bytes() == manifest
    assert not alpha.stand_ins.calls("nixos-rebuild")


def test_a_member_config_without_a_deployed_slice_says_so(fleet_of) -> None:  # type: ignore[no-untyped-def]
    fleet: Fleet = fleet_of(("alpha",))
    result = reply(fleet.ssh("alpha", "list"))
    assert result.returncode == 2
    assert "manifest.json: not found: nothing was deployed here" in result.stderr
    assert "devbox-ctl deploy HOST" in result.stderr


def _manifest(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"{not json", "is not JSON"),
        (b"[1]", "is not a JSON object"),
        (b'{"version": 2}', "version: is 2, this devbox-ctl reads version 1"),
        (b"\xff\xfe", "is not JSON"),
        (b'{"version": 1, "users": []}', "users: is not a JSON object"),
        (
            b'{"version": 1, "users": {"alice": {"uid": "x"}}}',
            "users.alice.uid: ",
        ),
        (
            b'{"version": 1, "users": {}, "containers": {"web": {"name": "web", "owner": "eve"}}}',
            "containers.web.owner: 'eve' is not a user here",
        ),
        (
            b'{"version": 1, "settings": {"maxPerUser": "many"}}',
            "settings.maxPerUser: ",
        ),
    ],
)
def test_a_bad_deployed_manifest_is_a_clear_error(
    tmp_path: Path, content: bytes, said: str
) -> None:
    path = _manifest(tmp_path, content)
    with pytest.raises(InputError) as caught:
        deployed.current(path)
    text = "\n".join(caught.value.lines())
    assert text.startswith(f"{path}: ")
    assert said in text


def test_a_huge_deployed_manifest_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deployed, "MAX_BYTES", 100)
    path = _manifest(tmp_path, b'{"version": 1, "notice": "' + b"x" * 200 + b'"}')
    with pytest.raises(InputError, match="is larger than 100 bytes"):
        deployed.load(path)


def test_fleet_host_is_for_root_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1001)
    result = run_cli("fleet-host", "deployed")
    assert result.code == 4
    assert "devbox-ctl fleet-host is run by root, from the control host over SSH" in result.err
    # Nor does a user reach it through the privileged path (sudo): not a runtime verb there.
    with pytest.raises(SystemExit) as caught:
        privileged.run(["fleet-host", "deployed"], sudo_uid="1001", config_path=tmp_path / "c")
    assert caught.value.code == 2


def test_fleet_host_is_hidden_from_help() -> None:
    shown = run_cli("--help")
    assert shown.code == 0
    assert "fleet-host" not in shown.out


@pytest.mark.parametrize("host", ["alpha", "beta", "gamma"])
def test_a_slice_manifest_gives_back_the_declaration_it_was_written_from(host: str) -> None:
    """examples/fleet's slices: what the member reads is what the control host generated."""
    path = REPO / "examples" / "fleet" / "generated" / "hosts" / host / "manifest.json"
    document = json.loads(path.read_text())
    desired = deployed.desired_from_manifest(document, str(path))
    assert {c.name: c.manifest_entry() for c in desired.containers} == document["containers"]
    assert all(c.host == host for c in desired.containers)
    assert desired.policy.model_dump(mode="json", by_alias=True) == document["settings"]
    assert {name: u.uid for name, u in desired.users.items()} == {
        name: entry["uid"] for name, entry in document["users"].items()
    }


def test_a_user_on_a_member_reads_through_sudo_and_is_told_where_to_change(
    member: Fleet,
) -> None:
    """bob runs devbox-ctl on alpha: the privileged path, with the member's config.json."""
    alpha = member.hosts["alpha"]
    listed = alpha.cli("list", "--json", uid=1002)
    assert listed.code == 0, listed.err
    assert [row["name"] for row in listed.json()] == ["api"]  # his own only
    refused = alpha.cli("stop", "api", uid=1002)
    assert (refused.code, refused.err) == (2, REFUSAL)
