"""devbox-ctl events: the event log (stops, starts, destroys, restores, warnings, pins)."""

from __future__ import annotations

import json
from typing import Any

import click

from devbox.cli.options import as_json, echo_json, runtime


def _line(event: dict[str, Any]) -> str:
    from devbox.escaping import shown  # noqa: PLC0415 - keep --help fast

    # Events quote what users wrote (reasons, errors from their volumes): every value escaped.
    rest = {k: v for k, v in event.items() if k not in ("time", "action", "container", "actor")}
    details = " ".join(
        shown(
            f"{key}={value if isinstance(value, str) else json.dumps(value, sort_keys=True)}", 2000
        )
        for key, value in sorted(rest.items())
        if key not in ("signals", "policy")
    )
    head = f"{shown(event.get('time', '?'))}  {shown(event.get('action', '?')):<16} "
    head += f"{shown(event.get('container', '?')):<20} by {shown(event.get('actor', '?'))}"
    return head + (f"  {details}" if details else "")


@click.command()
@click.option("--container", "-c", metavar="NAME", help="Only this container's events.")
@click.option(
    "--since",
    metavar="WHEN",
    help="From a time (2026-11-20, 2026-11-20T09:00:00Z) or an age (48h, 7d).",
)
@as_json
@click.pass_context
def command(ctx: click.Context, container: str | None, since: str | None, as_json: bool) -> None:
    """Show the event log, oldest first: who or what did what to which container, and why.

    Users see their own containers' events, admins all. --json prints every field of each
    event (the signals and the policy at that moment included).
    """
    from devbox import clock  # noqa: PLC0415 - keep --help fast
    from devbox.container import keepalive  # noqa: PLC0415 - keep --help fast
    from devbox.declare import resolve  # noqa: PLC0415 - keep --help fast
    from devbox.errors import UsageError  # noqa: PLC0415
    from devbox.host import events  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    start = None
    if since:
        try:
            start = resolve.timestamp(clock.now() - keepalive.parse_duration(since))
        except UsageError:
            start = _time(since)
    owners = {c.name: c.owner for c in rt.desired.containers}

    def visible(event: dict[str, Any]) -> bool:
        owner = event.get("owner") or owners.get(str(event.get("container")))
        return rt.caller.admin or owner == rt.caller.name

    chosen = events.select(
        events.read(rt.config.events_file), container=container, since=start, visible=visible
    )
    if as_json:
        echo_json(chosen)
        return
    for event in chosen:
        click.echo(_line(event))


def _time(text: str) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    from devbox.declare import resolve  # noqa: PLC0415
    from devbox.errors import UsageError  # noqa: PLC0415

    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a time nor an age",
            hint="write 2026-11-20, 2026-11-20T09:00:00Z, 48h or 7d",
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return resolve.timestamp(parsed.astimezone(UTC)) or ""
