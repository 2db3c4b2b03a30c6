"""Warnings to a container's owner before devbox stops or destroys it, and what was sent.

A warning goes out through every channel there is:

- the login notice: `~/.local/state/devbox/notice` on the volume, which the image's
  /etc/profile prints at every login (so it also reaches a stopped container's owner when
  they start it again);
- the open terminals: when the container runs, the text is written to every terminal of the
  container the user dev may write to (`podman exec` as dev, one write to each
  /dev/pts/N), as `wall` would;
- the webhook (users.nix `webhookUrl`), when set: an HTTP POST of the text, with ntfy's
  Title, Tags and Priority headers.

Each says what will happen, exactly when, why, and the one command that cancels it. The
ledger (`<stateDir>/cleanup/warnings.json`) records which lead times were sent for which
scheduled action, so each is sent once; a new schedule (the container was used, pinned, or
started) starts afresh, and its obsolete notice is removed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from devbox import clock, volume, write
from devbox.container import activity
from devbox.declare.resolve import Container
from devbox.escaping import shown
from devbox.host.context import Runtime
from devbox.lifecycle import policy
from devbox.lifecycle.work import Work

LEDGER = Path("cleanup") / "warnings.json"
WEBHOOK_TIMEOUT = 10
# Up to three days ahead a warning counts the time left in hours, beyond in days.
HOURS_SHOWN = 72
# Writes the text from standard input to every terminal of the container that dev may write
# to; run by `podman exec -i` as the container's user. The glob skips /dev/pts/ptmx.
TERMINALS_SCRIPT = (
    'text=$(cat); n=0; for t in /dev/pts/[0-9]*; do [ -w "$t" ] || continue; '
    'printf "\\r\\n%s\\r\\n" "$text" >"$t" 2>/dev/null && n=$((n + 1)); done; echo "$n"'
)


class Ledger:
    """Which warnings were sent, per container and scheduled action."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, state_dir: Path) -> Ledger:
        """The ledger; missing or unreadable counts as nothing sent (the safe direction)."""
        path = state_dir / LEDGER
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict) or not isinstance(data.get("containers"), dict):
            data = {"version": 1, "containers": {}}
        return cls(path, data)

    def _entry(self, container: str, kind: str) -> dict[str, Any]:
        entry = self.data["containers"].get(container, {}).get(kind)
        return entry if isinstance(entry, dict) else {}

    def sent(self, container: str, kind: str, due: datetime) -> dict[int, datetime]:
        """The lead times already sent for this action at this due time, and when."""
        entry = self._entry(container, kind)
        if entry.get("due") != clock.timestamp(due):
            return {}
        sent = {}
        for hours, at in entry.get("sent", {}).items():
            try:
                sent[int(hours)] = datetime.fromisoformat(at)
            except (TypeError, ValueError):
                continue
        return sent

    def mark(self, container: str, kind: str, due: datetime, hours: int, at: datetime) -> None:
        """Record a warning as sent."""
        entry = self._entry(container, kind)
        if entry.get("due") != clock.timestamp(due):
            entry = {"due": clock.timestamp(due), "sent": {}}
        entry["sent"][str(hours)] = clock.timestamp(at)
        self.data["containers"].setdefault(container, {})[kind] = entry

    def obsolete(self, container: str, episode: policy.Episode | None) -> bool:
        """Forget every schedule of the container but `episode`'s; True if one was forgotten.

        A refusal shares its destroy's due time, and keeps that destroy's warnings.
        """
        kinds = self.data["containers"].get(container, {})
        due = None if episode is None else clock.timestamp(episode.due)
        keep = {
            kind: entry
            for kind, entry in kinds.items()
            if isinstance(entry, dict) and due is not None and entry.get("due") == due
        }
        if keep == kinds:
            return False
        if keep:
            self.data["containers"][container] = keep
        else:
            self.data["containers"].pop(container, None)
        return True

    def save(self) -> None:
        """Write the ledger (root's, in the state directory)."""
        write.ensure_directory(self.path.parent, mode=0o700)
        text = json.dumps(self.data, indent=2, sort_keys=True) + "\n"
        write.write_file(self.path, text.encode("utf-8"), mode=0o600)


@dataclass(frozen=True)
class Message:
    """One warning: a short title and the text, each line a sentence."""

    kind: str
    title: str
    text: str
    cancel: str


def _when(value: datetime | None) -> str:
    return "an unknown time" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _in(value: datetime | None, now: datetime) -> str:
    if value is None:
        return ""
    left = max(value - now, timedelta(0))
    total_hours = round(left.total_seconds() / 3600)
    return f" (in {total_hours} hours)" if total_hours < HOURS_SHOWN else f" (in {left.days} days)"


def compose(
    container: Container, assessment: policy.Assessment, rt: Runtime, now: datetime
) -> Message:
    """The warning for an assessment that warns or refuses."""
    limits = rt.desired.policy
    name = container.name
    if assessment.action == policy.WARN_STOP:
        cancel = f"devbox-ctl keepalive --for 48h   (inside {name}; or just use it)"
        lines = [
            f"devbox will STOP the container {name} (owner {container.owner}) at "
            f"{_when(assessment.stop_at)}{_in(assessment.stop_at, now)}.",
            f"Why: no activity since {_when(assessment.last_activity)}; containers stop after "
            f"{limits.idle_stop_days} days without activity (SSH, code-server, Zed, keep-alive).",
            f"To cancel: {cancel}",
            f"Its files stay on its volume; `devbox-ctl start {name}` starts it again.",
        ]
        return Message(
            "stop",
            f"devbox: {name} stops at {_when(assessment.stop_at)}",
            _text(lines, now),
            cancel,
        )
    if assessment.action == policy.WARN_DESTROY:
        cancel = (
            f"devbox-ctl start {name}   (on the host; or pin it: "
            f"devbox-ctl pin {name} --until DATE --reason TEXT)"
        )
        lines = [
            f"devbox will DESTROY the stopped container {name} (owner {container.owner}) at "
            f"{_when(assessment.destroy_at)}{_in(assessment.destroy_at, now)}.",
            f"Why: stopped since {_when(container.stopped_at)}; stopped containers are destroyed "
            f"after {limits.stopped_destroy_days} days.",
            f"To cancel: {cancel}",
            f"Its volume is saved first and kept {limits.snapshot_retention_days} days: "
            f"`devbox-ctl restore {name}` brings it back.",
            *_work_lines(assessment.work),
        ]
        return Message(
            "destroy",
            f"devbox: {name} is destroyed at {_when(assessment.destroy_at)}",
            _text(lines, now),
            cancel,
        )
    cancel = (
        f"devbox-ctl start {name}   (or pin it: devbox-ctl pin {name} --until DATE --reason TEXT)"
    )
    lines = [
        f"devbox did NOT destroy the stopped container {name} (owner {container.owner}), due "
        f"at {_when(assessment.destroy_at)}: its volume holds work that is saved nowhere else.",
        *_work_lines(assessment.work),
        f"Push or remove that work and cleanup destroys it; or destroy it now: "
        f"`devbox-ctl destroy {name}` (its volume is saved and kept "
        f"{limits.snapshot_retention_days} days).",
        f"To keep it: {cancel}",
    ]
    return Message(
        "refuse", f"devbox: {name} was not destroyed (unsaved work)", _text(lines, now), cancel
    )


def _work_lines(work: Work | None) -> list[str]:
    if work is None or work.clear:
        return []
    return [f"Unsaved work: {item}" for item in work.found] + [
        f"Could not check: {item}" for item in work.unknown
    ]


def _text(lines: list[str], now: datetime) -> str:
    return "\n".join([*lines, f"(devbox cleanup, {_when(now)})"]) + "\n"


@dataclass(frozen=True)
class Delivery:
    """How each channel went."""

    notice: str
    terminals: str
    webhook: str

    def as_json(self) -> dict[str, str]:
        """For the event log."""
        return {"notice": self.notice, "terminals": self.terminals, "webhook": self.webhook}


# How long writing or removing the login notice may take.
NOTICE_BUDGET_SECONDS = 30


def _on_volume(rt: Runtime, container: Container, change: Callable[[volume.Tree], bool]) -> str:
    """Change the volume through volume.py (as its owner); say how it went, never raise."""
    budget = volume.Budget.of(NOTICE_BUDGET_SECONDS, f"the {NOTICE_BUDGET_SECONDS} s for a notice")
    try:
        tree = volume.open_volume(rt.podman(container.owner), container.volume, budget)
        if tree is None:
            return "no volume"
        with tree:
            return "written" if change(tree) else "not there"
    except volume.Unreadable as exc:
        return f"failed: {shown(exc)}"


def deliver(rt: Runtime, container: Container, message: Message) -> Delivery:
    """Send a warning through every channel; a channel that fails does not stop the others."""
    podman = rt.podman(container.owner)

    def write_notice(tree: volume.Tree) -> bool:
        tree.write(activity.NOTICE, message.text.encode("utf-8"))
        return True

    notice = _on_volume(rt, container, write_notice)
    terminals = "not running"
    inspected = podman.inspect_container(container.name)
    if podman.status_of(inspected) == "running":
        result = podman.run(
            "exec",
            "-i",
            container.name,
            "sh",
            "-c",
            TERMINALS_SCRIPT,
            stdin=message.text,
            timeout=30,
        )
        terminals = (
            f"written to {result.stdout.strip() or 0}"
            if result.ok
            else f"failed: {shown(result.stderr.strip())}"
        )
    url = rt.desired.policy.webhook_url
    webhook = "not configured" if url is None else post(url, message)
    return Delivery(notice, terminals, webhook)


def clear_notice(rt: Runtime, container: Container) -> bool:
    """Remove the login notice of a warning that no longer applies; True if there was one."""
    return _on_volume(rt, container, lambda tree: tree.remove(activity.NOTICE)) == "written"


def post(url: str, message: Message) -> str:
    """POST a warning to a webhook (ntfy's headers); say how it went, never raise."""
    request = urllib.request.Request(  # noqa: S310 - users.nix allows http(s) URLs only
        url,
        data=message.text.encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Title": message.title.encode("ascii", "replace").decode("ascii"),
            "Tags": "warning" if message.kind != "refuse" else "floppy_disk",
            "Priority": "high" if message.kind == "destroy" else "default",
            "User-Agent": "devbox-ctl",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:  # noqa: S310
            return f"sent (HTTP {response.status})"
    except urllib.error.HTTPError as exc:
        return f"failed: HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"failed: {getattr(exc, 'reason', exc)}"
