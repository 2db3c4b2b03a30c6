"""start, stop, destroy, rotate-key, connect and logs on a host (tests/host.py)."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from devbox import volume
from host import Host
from support import edit_record, require_root, run_cli


@pytest.fixture
def web(host: Host) -> Host:
    """A host with alice's container web, created and on the tailnet."""
    result = host.cli("create", "web", "--owner", "alice", "--timeout", "30")
    assert result.code == 0, result.err
    host.stand_ins.clear()
    return host


def run_state(host: Host, name: str, owner: str = "alice") -> str | None:
    """The host's run state of a container (host/runstate.py), None without a record."""
    path = host.state / "run-state" / owner / name
    return path.read_text().strip() if path.exists() else None


def rebuild(host: Host, *, tree: str | None = None) -> None:
    """nixos-rebuild switch (the stand-in: activation, then each changed user's apply).

    tree: a commit of the config repository whose generated tree to switch to instead of the
    current one, as a switch of a configuration built from another checkout does.
    """
    env = {**os.environ, **host.env}
    generated = host.repo / "devbox" / "generated"
    if tree is not None:
        older = host.base / "older-tree"
        shutil.rmtree(older, ignore_errors=True)
        archive = subprocess.run(
            ["git", "-C", str(host.repo), "archive", tree, "devbox/generated"],
            capture_output=True,
            check=True,
        )
        older.mkdir()
        subprocess.run(["tar", "-x", "-C", str(older)], input=archive.stdout, check=True)
        generated = older / "devbox" / "generated"
    env["DEVBOX_TEST_GENERATED"] = str(generated)
    result = subprocess.run(
        ["nixos-rebuild", "switch"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def head(host: Host) -> str:
    return subprocess.run(
        ["git", "-C", str(host.repo), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_stop_takes_effect_is_recorded_and_needs_no_rebuild(web: Host) -> None:
    result = web.cli("stop", "web")
    assert result.code == 0, result.err
    assert web.running() == []
    record = web.records()[0]
    assert record["state"] == "stopped"
    assert record["stoppedAt"].endswith("Z")
    assert web.git_log()[0].startswith("devbox: root stopped web")
    assert web.stand_ins.calls("nixos-rebuild") == []
    assert run_state(web, "web") == "stopped"
    # The immediate stop went through alice's manager.
    assert [
        "--user",
        "--machine=alice@",
        "--no-ask-password",
        "stop",
        "container-web.service",
    ] in web.stand_ins.argvs("systemctl")
    # The committed tree agrees with the committed declaration.
    assert run_cli_check(web) == 0


def run_cli_check(host: Host) -> int:
    result = run_cli("check", cwd=host.repo / "devbox")
    assert result.code == 0, result.out + result.err
    return result.code


def test_start_takes_effect_is_recorded_and_needs_no_rebuild(web: Host) -> None:
    web.cli("stop", "web")
    assert web.running() == []
    result = web.cli("start", "web")
    assert result.code == 0, result.err
    assert web.running() == ["web"]
    record = web.records()[0]
    assert record["state"] == "running"
    assert "stoppedAt" not in record
    assert web.stand_ins.calls("nixos-rebuild") == []
    assert run_state(web, "web") == "running"
    assert web.git_log()[0].startswith("devbox: root started web")


def test_a_later_rebuild_keeps_the_state_a_stop_or_start_set(web: Host) -> None:
    """A switch of a tree that does not include the change (built from an older checkout),
    then of the tree that does."""
    created = head(web)  # web declared running, as the last switch installed it
    web.cli("stop", "web")
    stopped = head(web)
    rebuild(web, tree=created)
    assert web.running() == []
    assert run_state(web, "web") == "stopped"
    rebuild(web)  # the committed tree: web declared stopped, as it is
    assert web.running() == []
    web.cli("start", "web")
    rebuild(web, tree=stopped)  # declared stopped, as the last switch installed it
    assert web.running() == ["web"]
    rebuild(web)
    assert web.running() == ["web"]
    assert run_state(web, "web") == "running"


def test_a_rebuild_after_someone_else_changed_the_repository_keeps_it(web: Host) -> None:
    """Another user's container created (a commit on top of the stop), then a switch."""
    web.cli("stop", "web")
    result = web.cli("create", "api", "--owner", "bob", "--timeout", "30")
    assert result.code == 0, result.err
    assert web.stand_ins.calls("nixos-rebuild") != []
    assert web.running() == ["api"]
    assert run_state(web, "web") == "stopped"


def test_a_declared_state_changed_by_hand_reaches_the_host_at_the_next_rebuild(
    web: Host,
) -> None:
    """An admin edits containers.json, generates, commits, rebuilds: the change is applied."""
    edit_record(web.repo / "devbox", "web", state="stopped", stoppedAt="2026-12-01T00:00:00Z")
    assert run_cli("generate", "-q", cwd=web.repo / "devbox").code == 0
    subprocess.run(
        [
            "git",
            "-C",
            str(web.repo),
            "-c",
            "user.name=admin",
            "-c",
            "user.email=a@h",
            "commit",
            "-qam",
            "stop web by hand",
        ],
        check=True,
    )
    rebuild(web)
    assert web.running() == []
    assert run_state(web, "web") == "stopped"


def test_a_failed_start_leaves_the_run_state_as_it_was(web: Host) -> None:
    web.cli("stop", "web")
    web.stand_ins.rules(
        "systemctl",
        [
            {
                "match": ["start", "container-web.service"],
                "exit": 1,
                "stderr": "Job for container-web.service failed.\n",
            }
        ],
    )
    result = web.cli("start", "web")
    assert result.code != 0
    assert "did not start" in result.err
    assert run_state(web, "web") == "stopped"
    assert web.records()[0]["state"] == "stopped"


def test_no_apply_is_for_a_fleet_a_single_host_rebuilds_nothing(web: Host) -> None:
    result = web.cli("stop", "web", "--no-apply")
    assert result.code == 0
    assert "Not applied" not in result.out
    assert web.stand_ins.calls("nixos-rebuild") == []
    assert web.records()[0]["state"] == "stopped"


def test_destroy_removes_everything_after_a_snapshot(web: Host) -> None:
    result = web.cli("destroy", "web", "--yes")
    assert result.code == 0, result.err
    assert web.records() == []
    assert web.running() == []
    assert web.podman("volume", "exists", "web-data").returncode != 0
    assert web.podman("secret", "inspect", "devbox-web-ts-authkey").returncode != 0
    assert "Saved the volume web-data to " in result.out
    assert "No Tailscale API key is configured: remove the device web" in result.out
    assert list((web.state / "snapshots").rglob("*.tar*")), "no snapshot was kept"
    assert not (web.deployed / "users/1001/devbox-web.container").exists()
    assert web.git_log()[0].startswith("devbox: root destroyed web")


def test_destroy_keep_volume_says_where_it_is(web: Host) -> None:
    result = web.cli("destroy", "web", "--yes", "--keep-volume")
    assert result.code == 0, result.err
    assert web.podman("volume", "exists", "web-data").returncode == 0
    assert "Kept the volume web-data in alice's podman storage" in result.out
    assert "devbox-ctl create web (the same name mounts it)" in result.out
    assert web.podman("secret", "inspect", "devbox-web-ts-authkey").returncode != 0


def test_destroy_asks_first(web: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    result = web.cli("destroy", "web")
    assert result.code == 2
    assert "Destroy web (owner alice), and its volume web-data? [y/N]" in result.err
    assert [r["name"] for r in web.records()] == ["web"]


class _TailscaleApi(http.server.BaseHTTPRequestHandler):
    """Stands in for api.tailscale.com (not reachable here): two devices, one of them web.

    Follows Tailscale's API v2 as its Go client at v1.94.2 (nixos-26.05's tailscale) uses it,
    client/tailscale/devices.go: `GET /api/v2/tailnet/{tailnet}/devices` → {"devices": [...]}
    with `id`, `hostname`, `name`, `tags`; `DELETE /api/v2/device/{id}` → 200 and no body.
    Errors as the API answers them (client/tailscale/tailscale.go, ErrResponse): a missing or
    wrong bearer token 401, an unknown path or device 404, each with {"message": …}.
    """

    deleted: list[str] = []  # noqa: RUF012 - shared with the test
    listed: list[str] = []  # noqa: RUF012
    auth: list[str] = []  # noqa: RUF012
    token = "tskey-api-TEST"
    devices: ClassVar[list[dict[str, object]]] = [
        {
            "id": "111",
            "hostname": "web",
            "name": "web.tail1234.ts.net",
            "tags": ["tag:devcontainer", "tag:alice-container"],
        },
        {"id": "222", "hostname": "laptop", "name": "laptop.tail1234.ts.net", "tags": []},
    ]

    def _authorized(self) -> bool:
        self.auth.append(self.headers["Authorization"])
        if self.headers["Authorization"] != f"Bearer {self.token}":
            self._reply(401, {"message": "API token invalid"})
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if not re.fullmatch(r"/api/v2/tailnet/[^/?]+/devices(\?.*)?", self.path):
            self._reply(404, {"message": "not found"})
            return
        self.listed.append(self.path)
        self._reply(200, {"devices": self.devices})

    def do_DELETE(self) -> None:
        if not self._authorized():
            return
        known = {f"/api/v2/device/{device['id']}" for device in self.devices}
        if self.path not in known:
            self._reply(404, {"message": "not found"})
            return
        self.deleted.append(self.path)
        self._reply(200, None)

    def _reply(self, code: int, body: object) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_destroy_removes_the_tailscale_device_with_an_api_key(web: Host) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _TailscaleApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key_file = web.base / "ts-api-key"
    key_file.write_text("tskey-api-TEST\n")
    config = json.loads(web.config_path.read_text())
    config |= {
        "tailscaleApiKeyFile": str(key_file),
        "tailscaleApiUrl": f"http://127.0.0.1:{server.server_port}",
        "tailnet": "example.com",
    }
    web.config_path.write_text(json.dumps(config))
    try:
        result = web.cli("destroy", "web", "--yes")
    finally:
        server.shutdown()
    assert result.code == 0, result.err
    assert _TailscaleApi.listed == ["/api/v2/tailnet/example.com/devices"]
    assert _TailscaleApi.deleted == ["/api/v2/device/111"]
    assert _TailscaleApi.auth == ["Bearer tskey-api-TEST"] * 2  # the listing and the delete
    assert "Removed the Tailscale device web.tail1234.ts.net." in result.out


def test_rotate_key_re_enrolls_without_recreating(web: Host) -> None:
    before = web.podman("volume", "inspect", "web-data", "--format", "{{.CreatedAt}}").stdout
    result = web.cli("rotate-key", "web", "--timeout", "30")
    assert result.code == 0, result.err
    assert "web is on the tailnet again" in result.out
    calls = Path(
        web.podman("volume", "inspect", "web-data", "--format", "{{.Mountpoint}}").stdout.strip(),
        ".local/share/tailscale/calls",
    ).read_text()
    assert "logout" in calls
    assert (
        web.podman("volume", "inspect", "web-data", "--format", "{{.CreatedAt}}").stdout == before
    )
    assert web.running() == ["web"]
    assert [c["stdin_bytes"] for c in web.stand_ins.calls("systemd-run") if "create" in c["argv"]][
        -1
    ] == 1


def test_connect_prints_every_way_in(web: Host) -> None:
    result = web.cli("connect", "web")
    assert result.code == 0
    assert result.out == (
        "web (owner alice):\n"
        "  SSH:          ssh dev@web\n"
        "  code-server:  http://web:8080\n"
        "  Zed:          Connect to Server → dev@web\n"
    )
    assert web.cli("connect", "web", "--json").json() == {
        "ssh": "dev@web",
        "codeServer": "http://web:8080",
        "zed": "dev@web",
        "syncthing": None,
    }


def test_connect_shows_syncthing_when_enabled(host: Host) -> None:
    assert (
        host.cli("create", "notes", "--owner", "bob", "--with-syncthing", "--timeout", "30").code
        == 0
    )
    result = host.cli("connect", "notes")
    assert (
        "Syncthing:    http://notes:8384  (user dev; password: ssh dev@notes cat ~/.config/syncthing/gui-password)"
        in result.out
    )


def test_logs_show_the_container_output(web: Host, capfd: pytest.CaptureFixture[str]) -> None:
    web.podman("exec", "web", "sh", "-c", "echo hello-from-web > /proc/1/fd/1")
    result = web.cli("logs", "web")
    assert result.code == 0
    assert "hello-from-web" in capfd.readouterr().out


def test_an_unknown_container_names_the_ones_the_caller_may_mean(web: Host) -> None:
    result = web.cli("stop", "nope", uid=1001)  # alice, an admin: every declared one
    assert result.code == 2
    assert "no container is named 'nope'; declared: web" in result.err
    result = web.cli("stop", "nope", uid=1002)  # bob: his own, none
    assert "no container is named 'nope'; yours: none yet (devbox-ctl create NAME)" in result.err


# --- A destroyed container's Nix GC roots (docs/nix-in-containers.md) -------------------------

DEV = 1001 * 65536 + 999  # alice's container's dev, who owns her roots once a unit mounted them


@pytest.fixture
def roots(web: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alice's GC roots as her containers leave them: web's and notes', and a link out."""
    require_root("the roots belong to alice's subordinate uid")
    base = tmp_path / "gcroots"
    monkeypatch.setattr(volume, "NIX_ROOTS", base)
    own = base / "alice"
    (own / "web" / "deep" / "er").mkdir(parents=True)
    (own / "web" / "deep" / "er" / "file").write_text("x")
    (own / "web" / "profile").symlink_to("/nix/store/00000000000000000000000000000000-profile")
    bait = tmp_path / "bait"
    bait.mkdir()
    (bait / "root-only").write_text("root's\n")
    (own / "web" / "out").symlink_to(bait)
    (own / "notes").mkdir()
    (own / "notes" / "kept").symlink_to("/nix/store/00000000000000000000000000000000-kept")
    for path in [own, *own.rglob("*")]:
        os.lchown(path, DEV, DEV)
    return own


def test_destroy_removes_the_containers_gc_roots_and_only_them(web: Host, roots: Path) -> None:
    result = web.cli("destroy", "web", "--yes")
    assert result.code == 0, result.err
    assert f"Removed its Nix GC roots {roots / 'web'}." in result.out
    assert not (roots / "web").exists()
    assert (roots / "notes" / "kept").is_symlink()
    # The link out was removed, not followed.
    assert (roots.parents[1] / "bait" / "root-only").read_text() == "root's\n"


def test_roots_go_when_a_switch_gave_the_owners_directory_back_to_the_owner(
    web: Host, roots: Path
) -> None:
    # Found by the host test: the module's tmpfiles rule makes alice's directory hers again at
    # every switch, while web's directory and its links stay her container's dev's. Neither
    # identity alone can remove both.
    os.chown(roots, 1001, 100)
    result = web.cli("destroy", "web", "--yes")
    assert result.code == 0, result.err
    assert f"Removed its Nix GC roots {roots / 'web'}." in result.out
    assert not (roots / "web").exists()
    assert (roots / "notes" / "kept").is_symlink()


def test_destroy_keeping_the_volume_keeps_the_gc_roots(web: Host, roots: Path) -> None:
    result = web.cli("destroy", "web", "--yes", "--keep-volume")
    assert result.code == 0, result.err
    assert (roots / "web" / "profile").is_symlink()
    assert "GC roots" not in result.out


def test_a_roots_directory_swapped_for_a_link_is_left_and_said(
    web: Host, roots: Path, tmp_path: Path
) -> None:
    # alice's container replaces her roots directory's entry for web with a link to a place of
    # root's: the link itself goes. Her own directory replaced by a link is not opened at all.
    target = tmp_path / "root-only"
    (target / "web").mkdir(parents=True)
    (target / "web" / "file").write_text("root's\n")
    shutil.rmtree(roots)
    roots.symlink_to(target)
    result = web.cli("destroy", "web", "--yes")
    assert result.code == 0, result.err
    assert f"Left its Nix GC roots {roots / 'web'}: alice's Nix GC roots: alice is a link" in (
        result.out
    )
    assert (target / "web" / "file").read_text() == "root's\n"
    assert web.records() == []


def test_timings_say_where_a_verbs_time_went(web: Host) -> None:
    result = web.cli("stop", "web", "--timings")
    assert result.code == 0, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("timing: root: ")]
    said = {line.split(": ")[2]: line for line in lines}
    # Every program the verb ran is named with its count: git, systemctl in alice's manager
    # (the stand-ins of tests/host.py); a stop runs no rebuild.
    assert re.fullmatch(
        r"timing: root: program systemctl: [0-9.]+ s \(1 run\)", said["program systemctl"]
    )
    assert "program nixos-rebuild" not in said
    assert "program git" in said
    # users.nix is unchanged since create evaluated it: read from root's cache, no Nix run.
    assert "program nix-instantiate" not in said
    assert (web.state / "cache" / "users-nix.json").is_file()
    for part in ("start and imports", "devbox itself", "total", "waiting for the config lock"):
        assert re.fullmatch(rf"timing: root: {part}: [0-9.]+ s", said[part]), part
    total = float(said["total"].split(": ")[-1].removesuffix(" s"))
    parts = sum(
        float(line.split(": ")[3].split(" s")[0]) for name, line in said.items() if name != "total"
    )
    assert parts <= total + 0.05
    # Off again for the next command of the process.
    again = web.cli("start", "web")
    assert "timing:" not in again.err


def test_roots_that_cannot_be_removed_are_said_with_their_names_escaped(
    web: Host, roots: Path
) -> None:
    # A directory in web's roots that only root may change (its dev cannot empty it), holding
    # a file whose name would drive the terminal: destroy goes on, and says it, escaped.
    stuck = roots / "web" / "stuck"
    stuck.mkdir()
    (stuck / "\x1b[2Jred").write_text("x")
    result = web.cli("destroy", "web", "--yes")
    assert result.code == 0, result.err
    assert f"Left its Nix GC roots {roots / 'web'}: " in result.out
    assert "\x1b" not in result.out
    assert "\\x1b[2Jred" in result.out
    assert web.records() == []
