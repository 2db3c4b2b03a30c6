"""Warnings: the text, the login notice on the volume, the open terminals and the webhook.

The webhook is a local HTTP server standing in for ntfy (no other server is reachable here).
The terminal test runs a real container on the test host (tests/host.py) with a real
terminal inside it, opened with `podman exec -t` on a pseudo-terminal of the test's own.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from lifecycle_support import Hook, as_rootless, dev_uid, open_as_volume, runtime

from devbox.container import activity
from devbox.lifecycle import notices, policy
from devbox.volume import Unreadable


def stop_warning(now) -> policy.Assessment:
    last = now.now - timedelta(days=6)
    return policy.Assessment(
        last_activity=last,
        stop_at=last + timedelta(days=7),
        destroy_at=last + timedelta(days=21),
        action="warn-stop",
        reasons=["warns now: 24 h before the stop at 2026-11-03T09:00:00Z"],
        signals={},
        episode=policy.Episode("stop", last + timedelta(days=7), (24,)),
        warn_hours=24,
    )


def test_a_warning_says_what_when_why_and_the_command_that_cancels_it(tmp_path: Path, now) -> None:
    rt = runtime(tmp_path, [{"name": "web", "owner": "alice"}])
    message = notices.compose(rt.container("web"), stop_warning(now), rt, now.now)
    assert message.title == "devbox: web stops at 2026-11-03 09:00 UTC"
    assert message.text.splitlines() == [
        "devbox will STOP the container web (owner alice) at 2026-11-03 09:00 UTC (in 24 hours).",
        "Why: no activity since 2026-10-27 09:00 UTC; containers stop after 7 days without "
        "activity (SSH, code-server, Zed, keep-alive).",
        "To cancel: devbox-ctl keepalive --for 48h   (inside web; or just use it)",
        "Its files stay on its volume; `devbox-ctl start web` starts it again.",
        "(devbox cleanup, 2026-11-02 09:00 UTC)",
    ]


def test_the_webhook_gets_the_text_with_ntfy_headers(tmp_path: Path, now, webhook: str) -> None:
    rt = runtime(tmp_path, [{"name": "web", "owner": "alice"}])
    message = notices.compose(rt.container("web"), stop_warning(now), rt, now.now)
    assert notices.post(webhook, message) == "sent (HTTP 200)"
    [(headers, body)] = Hook.received
    assert body.decode() == message.text
    assert headers["Title"] == "devbox: web stops at 2026-11-03 09:00 UTC"
    assert headers["Tags"] == "warning"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    # A webhook that is down is reported, never raised: the other channels still count.
    assert notices.post("http://127.0.0.1:9/nothing", message).startswith("failed: ")


def test_the_login_notice_is_written_as_the_volume_owner_and_never_through_a_link(
    tmp_path: Path,
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    dev = dev_uid(1001)  # the container's dev, as rootless podman maps it
    with open_as_volume(volume) as tree:
        tree.write(activity.NOTICE, b"warning\n")
        notice = volume / activity.NOTICE
        assert notice.read_text() == "warning\n"
        assert (notice.stat().st_uid, notice.parent.stat().st_uid) == (dev, dev)
        assert tree.remove(activity.NOTICE)
        assert not tree.remove(activity.NOTICE)

        # The container's user points the state directory at a root-owned place: refused.
        target = tmp_path / "etc"
        target.mkdir()
        (volume / activity.STATE).rmdir()
        (volume / activity.STATE).symlink_to(target)
        with pytest.raises(Unreadable, match=r"Too many levels of symbolic links|Not a directory"):
            tree.write(activity.NOTICE, b"x")
        assert list(target.iterdir()) == []


@pytest.mark.slow
def test_open_terminals_in_the_container_get_the_warning(host, now, webhook: str) -> None:
    assert host.cli("create", "web", "--owner", "alice", "--timeout", "30").code == 0
    master, slave = pty.openpty()
    session = subprocess.Popen(
        ["podman", "exec", "-it", "web", "sh", "-c", "sleep 30"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, **host.env},
    )
    try:
        rt = runtime(
            host.state,
            [{"name": "web", "owner": "alice"}],
            config_repo=host.repo,
            webhookUrl=webhook,
        )
        waited = 0.0
        while (
            "0" not in host.podman("exec", "web", "ls", "/dev/pts").stdout.split() and waited < 10
        ):
            select.select([], [], [], 0.2)
            waited += 0.2
        inspected = host.podman("volume", "inspect", "web-data", "--format", "{{.Mountpoint}}")
        as_rootless(Path(inspected.stdout.strip()))  # as alice's rootless podman has it
        message = notices.compose(rt.container("web"), stop_warning(now), rt, now.now)
        delivery = notices.deliver(rt, rt.container("web"), message)
        assert delivery.terminals == "written to 1"
        assert delivery.notice == "written"
        assert delivery.webhook == "sent (HTTP 200)"
        seen = b""
        while b"To cancel" not in seen and select.select([master], [], [], 5)[0]:
            seen += os.read(master, 4096)
        assert b"devbox will STOP the container web" in seen
        on_volume = host.podman("exec", "web", "cat", "/home/dev/.local/state/devbox/notice").stdout
        assert on_volume == message.text
    finally:
        session.kill()
        session.wait()
        os.close(master)
        os.close(slave)
