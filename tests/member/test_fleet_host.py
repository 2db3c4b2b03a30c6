"""`devbox-ctl fleet-host OP` on member hosts, reached through ssh as the control host does.

The fleet is simulated (tests/fleet.py): each member is a host of its own with real podman
and its own real sshd, which runs the member's own devbox-ctl in its environment; colmena is
a stand-in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from devbox.tools import ssh
from fleet import Fleet
from host import KEY

STOPPED = {"name": "web", "owner": "alice", "state": "stopped", "host": "alpha"}


def answer(reply: ssh.Reply | ssh.Unreachable) -> ssh.Reply:
    assert isinstance(reply, ssh.Reply), reply
    return reply


def json_of(reply: ssh.Reply | ssh.Unreachable) -> dict[str, object]:
    done = answer(reply)
    assert done.ok, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def pair(fleet_of) -> Fleet:  # type: ignore[no-untyped-def]
    """alpha declares web (stopped), with files on its volume; beta declares nothing."""
    fleet: Fleet = fleet_of(("alpha", "beta"))
    fleet.declare([STOPPED])
    fleet.deploy("alpha")
    fleet.deploy("beta")
    alpha = fleet.hosts["alpha"]
    assert alpha.podman("volume", "create", "web-data").returncode == 0
    home = fleet.volume_path("alpha", "web-data")
    (home / "project").mkdir()
    (home / "project" / "notes.md").write_text("work in progress\n")
    state = home / ".local" / "share" / "tailscale"
    state.mkdir(parents=True)
    (state / "tailscaled.state").write_bytes(b'{"_machinekey": "privkey:0123"}\x00\xff')
    (home / "big.bin").write_bytes(bytes(range(256)) * 8192)
    return fleet


def test_deployed_says_which_slice_is_deployed(fleet_of) -> None:  # type: ignore[no-untyped-def]
    fleet: Fleet = fleet_of(("alpha",))
    assert json_of(fleet.ssh("alpha", "fleet-host", "deployed")) == {
        "host": "alpha",
        "manifestSha256": None,
    }
    fleet.declare([STOPPED])
    fleet.deploy("alpha")
    # What the control host's fleet index records for the slice is what the member reports.
    index = json.loads((fleet.slice_dir("alpha").parent.parent / "manifest.json").read_text())
    expected = index["fleet"]["hosts"]["alpha"]["manifestSha256"]
    assert (
        expected
        == hashlib.sha256((fleet.slice_dir("alpha") / "manifest.json").read_bytes()).hexdigest()
    )
    assert json_of(fleet.ssh("alpha", "fleet-host", "deployed")) == {
        "host": "alpha",
        "manifestSha256": expected,
    }
    # What went over ssh: the module's sshCommand (the test's adds only its client
    # configuration, tests/fleet.py), the remote words; what the member's devbox-ctl got.
    assert fleet.remote("alpha").argv("fleet-host", "deployed") == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-F",
        str(fleet.network.ssh_config),
        "--",
        "root@alpha.fleet.test",
        "devbox-ctl",
        "fleet-host",
        "deployed",
    ]
    assert fleet.remote_argvs("alpha")[-1] == ["fleet-host", "deployed"]


def test_set_key_takes_the_key_on_stdin_only(pair: Fleet) -> None:
    beta = pair.hosts["beta"]
    done = json_of(pair.ssh("beta", "fleet-host", "set-key", "web", "--owner", "alice", stdin=KEY))
    assert done == {"name": "web", "secret": "devbox-web-ts-authkey", "neutralised": False}
    assert beta.podman("secret", "inspect", "devbox-web-ts-authkey").returncode == 0
    created = [
        c
        for c in beta.stand_ins.calls("systemd-run")
        if "create" in c["argv"] and "secret" in c["argv"]
    ]
    assert created[-1]["stdin_sha256"] == hashlib.sha256(KEY.encode()).hexdigest()
    for log in [pair.control.stand_ins.log, beta.stand_ins.log]:
        assert KEY not in log.read_text()
    # Neutralised by an empty line, as the control host does once the container joined.
    assert json_of(
        pair.ssh("beta", "fleet-host", "set-key", "web", "--owner", "alice", stdin="\n")
    )["neutralised"]


@pytest.mark.parametrize(
    ("args", "stdin", "said"),
    [
        (["web", "--owner", "alice"], "not-a-key", "does not hold a Tailscale auth key"),
        (["Web_1", "--owner", "alice"], KEY, "container name"),
        (["web", "--owner", "mallory"], KEY, "'mallory' is not a user"),
        (["web", "--owner", "bob"], KEY, "web is declared on this host for alice, not bob"),
    ],
)
def test_set_key_refuses_bad_input_with_exit_2(
    pair: Fleet, args: list[str], stdin: str, said: str
) -> None:
    reply = answer(pair.ssh("alpha", "fleet-host", "set-key", *args, stdin=stdin))
    assert reply.returncode == 2
    assert said in reply.stderr
    assert "not-a-key" not in reply.stderr  # what came on stdin is never repeated
    assert pair.hosts["alpha"].podman("secret", "inspect", "devbox-web-ts-authkey").returncode


def test_export_import_moves_the_volume_with_its_tailscale_state(pair: Fleet) -> None:
    source = pair.volume_path("alpha", "web-data")
    first, second = ssh.stream(
        pair.remote("alpha"),
        ["fleet-host", "export", "web", "--owner", "alice"],
        pair.remote("beta"),
        ["fleet-host", "import", "web", "--owner", "alice"],
        timeout=300,
    )
    assert answer(first).ok, first
    assert json_of(second) == {"name": "web", "volume": "web-data", "imported": True}
    target = pair.volume_path("beta", "web-data")
    for path in ("project/notes.md", ".local/share/tailscale/tailscaled.state", "big.bin"):
        assert (target / path).read_bytes() == (source / path).read_bytes(), path
    assert json_of(pair.ssh("beta", "fleet-host", "volume", "web", "--owner", "alice")) == {
        "exists": True
    }
    # A rerun (an interrupted move resumed) starts from a fresh volume, not on top of it.
    (target / "left-over").write_text("from the first attempt\n")
    _, again = ssh.stream(
        pair.remote("alpha"),
        ["fleet-host", "export", "web", "--owner", "alice"],
        pair.remote("beta"),
        ["fleet-host", "import", "web", "--owner", "alice"],
        timeout=300,
    )
    assert json_of(again)["imported"]
    target = pair.volume_path("beta", "web-data")
    assert not (target / "left-over").exists()
    assert (target / "project/notes.md").read_text() == "work in progress\n"


def test_import_is_refused_where_the_container_is_declared(pair: Fleet) -> None:
    """alpha declares web: its volume is never replaced by an import."""
    _, refused = ssh.stream(
        pair.remote("alpha"),
        ["fleet-host", "export", "web", "--owner", "alice"],
        pair.remote("alpha"),
        ["fleet-host", "import", "web", "--owner", "alice"],
        timeout=300,
    )
    reply = answer(refused)
    assert reply.returncode == 2
    assert "web is declared on this host and has its volume web-data" in reply.stderr
    assert (pair.volume_path("alpha", "web-data") / "project/notes.md").is_file()


def test_purge_snapshots_then_removes_and_a_rerun_is_success(pair: Fleet) -> None:
    alpha = pair.hosts["alpha"]
    json_of(pair.ssh("alpha", "fleet-host", "set-key", "web", "--owner", "alice", stdin=KEY))
    done = json_of(pair.ssh("alpha", "fleet-host", "purge", "web", "--owner", "alice"))
    assert done["volumeRemoved"] is True
    snapshot = Path(str(done["snapshot"]))
    assert snapshot.is_file()
    assert snapshot.is_relative_to(alpha.state / "snapshots")
    assert alpha.podman("volume", "exists", "web-data").returncode == 1
    assert alpha.podman("secret", "inspect", "devbox-web-ts-authkey").returncode != 0
    again = json_of(pair.ssh("alpha", "fleet-host", "purge", "web", "--owner", "alice"))
    assert again == {"name": "web", "snapshot": None, "volumeRemoved": False, "nixRoots": []}
    events = [json.loads(line) for line in (alpha.state / "events.jsonl").read_text().splitlines()]
    assert [e["action"] for e in events] == ["fleet-purge", "fleet-purge"]


def test_purge_is_refused_while_declared_running_here(pair: Fleet) -> None:
    """beta runs web (key set, deployed running): neither purge nor import may touch it."""
    json_of(pair.ssh("beta", "fleet-host", "set-key", "web", "--owner", "alice", stdin=KEY))
    pair.declare([{**STOPPED, "state": "running", "host": "beta"}])
    pair.deploy("beta")
    beta = pair.hosts["beta"]
    assert beta.running() == ["web"]
    # The member's read verbs see it running, from its deployed slice.
    status = json_of(pair.ssh("beta", "status", "web", "--json"))
    assert (status["declared"], status["actual"]) == ("running", "running")
    assert answer(pair.ssh("beta", "logs", "web")).ok
    connect = answer(pair.ssh("beta", "connect", "web", "--json"))
    assert connect.ok, connect.stderr
    for op in ("purge", "import"):
        reply = answer(pair.ssh("beta", "fleet-host", op, "web", "--owner", "alice", stdin=""))
        assert reply.returncode == 2, reply
        assert f"web is declared running on this host: {op} refused" in reply.stderr
    assert beta.running() == ["web"]
    assert beta.podman("volume", "exists", "web-data").returncode == 0


def test_an_unreachable_host_is_its_own_result(pair: Fleet) -> None:
    pair.down("beta")
    # OpenSSH's own words: the address and port it tried (the fleet's ssh_config maps
    # beta.fleet.test to beta's sshd on 127.0.0.1).
    refused = f"ssh: connect to host 127.0.0.1 port {pair.port('beta')}: Connection refused"
    reply = pair.ssh("beta", "fleet-host", "deployed")
    assert reply == ssh.Unreachable("beta", "root@beta.fleet.test", refused)
    assert str(reply) == f"beta (root@beta.fleet.test) is unreachable: {refused}"
    # The export's source answered, the import's target did not: each says so on its own.
    first, second = ssh.stream(
        pair.remote("alpha"),
        ["fleet-host", "export", "web", "--owner", "alice"],
        pair.remote("beta"),
        ["fleet-host", "import", "web", "--owner", "alice"],
        timeout=300,
    )
    assert isinstance(second, ssh.Unreachable)
    assert not isinstance(first, ssh.Unreachable)
    pair.down("beta", down=False)
    assert json_of(pair.ssh("beta", "fleet-host", "volume", "web", "--owner", "alice")) == {
        "exists": False
    }


def test_an_export_that_sent_nothing_never_becomes_an_empty_volume(pair: Fleet) -> None:
    """gone has no volume on alpha: its export fails, and beta imports nothing."""
    first, second = ssh.stream(
        pair.remote("alpha"),
        ["fleet-host", "export", "gone", "--owner", "alice"],
        pair.remote("beta"),
        ["fleet-host", "import", "gone", "--owner", "alice"],
        timeout=300,
    )
    assert answer(first).returncode == 2
    assert "gone has no volume gone-data on this host" in answer(first).stderr
    refused = answer(second)
    assert refused.returncode == 2
    assert "standard input held 0 bytes, not a volume's tar stream" in refused.stderr
    assert pair.hosts["beta"].podman("volume", "exists", "gone-data").returncode == 1


def test_the_control_host_can_be_a_host_of_the_fleet(fleet_of) -> None:  # type: ignore[no-untyped-def]
    """As alpha in examples/fleet: it holds the repository and runs containers of its slice."""
    fleet: Fleet = fleet_of(("alpha", "beta"), control="alpha")
    assert fleet.control is fleet.hosts["alpha"]
    fleet.declare([STOPPED])
    fleet.deploy("alpha")
    index = json.loads((fleet.control.repo / "devbox/generated/manifest.json").read_text())
    assert json_of(fleet.ssh("alpha", "fleet-host", "deployed")) == {
        "host": "alpha",
        "manifestSha256": index["fleet"]["hosts"]["alpha"]["manifestSha256"],
    }
    # Its own fleet-host ops go by what is deployed on it, not by the repository's records.
    assert json_of(fleet.ssh("alpha", "fleet-host", "volume", "web", "--owner", "alice")) == {
        "exists": False
    }
    reply = answer(fleet.ssh("alpha", "fleet-host", "set-key", "web", "--owner", "bob", stdin=KEY))
    assert reply.returncode == 2
    assert "web is declared on this host for alice, not bob" in reply.stderr
