"""devbox-ctl list: your containers (admins: --all), declared and actual."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from devbox.cli.options import as_json, echo_json, in_fleet, runtime, when
from devbox.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from devbox.host.context import Runtime
    from devbox.lifecycle.policy import Assessment

COLUMNS = (
    "NAME",
    "OWNER",
    "DECLARED",
    "ACTUAL",
    "CPU",
    "MEMORY",
    "CREATED",
    "LAST ACTIVITY",
    "IDLE STOP",
    "DESTROY",
)


@click.command(name="list")
@click.option("--all", "all_users", is_flag=True, help="Every user's containers (admins).")
@as_json
@click.pass_context
def command(ctx: click.Context, all_users: bool, as_json: bool) -> None:
    """List containers: declared and actual state, resources, activity, lifecycle dates.

    Times are UTC. IDLE STOP is when the container would be stopped for inactivity, DESTROY
    when a stopped one would be destroyed (see devbox-ctl status NAME --why).
    """
    from devbox import clock  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import listing  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    if all_users and not rt.caller.admin:
        raise UsageError("--all is for admins (users.nix admin = true); without it you see yours")
    if in_fleet(rt):
        _fleet(rt, all_users=all_users, as_json=as_json)
        return
    now = clock.now()
    views = listing.views(rt, listing.listed(rt, all_users=all_users), now)
    if as_json:
        echo_json([v.as_json() for v in views])
        return
    if not views:
        click.echo("No containers. Create one: devbox-ctl create NAME")
        return
    rows = [COLUMNS]
    for v in views:
        c, a = v.container, v.assessment
        rows.append(
            (
                c.name,
                c.owner,
                c.state,
                v.actual,
                str(c.cpu),
                c.memory,
                when(c.created),
                _last_activity(a),
                when(a.stop_at if a else None),
                when(a.destroy_at if a else None),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for v in views:
        for line in v.disagreements:
            click.echo(f"! {v.container.name}: {line}")


def _last_activity(a: Assessment | None) -> str:
    """LAST ACTIVITY: to the minute; '-' none; 'unknown' when it could not be read."""
    from devbox.runtime import listing  # noqa: PLC0415 - keep --help fast

    shown = listing.last_activity(a)
    return shown if shown == listing.UNKNOWN else when(a.last_activity if a else None)


# A fleet's list has a single host's columns, each row with its host.
FLEET_COLUMNS = ("HOST", *COLUMNS)
# The keys of a host's `list --json` row for the columns: text, then times.
_TEXT_KEYS = ("host", "name", "owner", "declared", "actual", "cpu", "memory")
_TIME_KEYS = ("created", "lastActivity", "idleStopAt", "destroyAt")
_ACTIVITY_KEYS = frozenset(_TIME_KEYS[1:])


def _time(value: object) -> str:
    """A time a host answered, as `when` shows one: to the minute; '-' none, 'unknown' unknown."""
    from datetime import UTC, datetime  # noqa: PLC0415 - keep --help fast

    from devbox.escaping import shown  # noqa: PLC0415 - keep --help fast

    if value is None:
        return "-"
    try:
        parsed = datetime.fromisoformat(str(value))
        return when(parsed.astimezone(UTC) if parsed.tzinfo else parsed)
    except ValueError:  # "unknown", or whatever else a host said: shown as it is, escaped
        return shown(value, 40)


def _fleet_row(row: dict[str, object]) -> tuple[str, ...]:
    """One host's row in the table; its activity 'unknown' where the host could not read it."""
    from devbox.escaping import shown  # noqa: PLC0415 - keep --help fast

    text = [shown("-" if row.get(key) is None else row[key], 40) for key in _TEXT_KEYS]
    unknown = bool(row.get("unknown"))
    times = [
        "unknown" if unknown and key in _ACTIVITY_KEYS else _time(row.get(key))
        for key in _TIME_KEYS
    ]
    return (*text, *times)


def _fleet(rt: Runtime, *, all_users: bool, as_json: bool) -> None:
    """A fleet's list: every host's answer, with the host; exit 3 when a host did not answer."""
    from devbox.escaping import shown  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import fleet_views  # noqa: PLC0415 - keep --help fast

    found = fleet_views.fleet_list(rt, all_users=all_users)
    if as_json:
        echo_json(found.as_json())
    else:
        table: list[tuple[str, ...]] = [FLEET_COLUMNS]
        table += [_fleet_row(row) for row in found.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(FLEET_COLUMNS))]
        for line in table:
            click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        for row in found.rows:
            for line in row.get("disagreements") or []:
                click.echo(f"! {row.get('name')}: {shown(str(line), 300)}")
        for host, reason in sorted(found.unreachable.items()):
            click.echo(
                f"! host {host} is unreachable ({shown(reason, 300)}): its containers "
                "are listed as declared, not as they are",
                err=True,
            )
        for host, reason in sorted(found.failed.items()):
            click.echo(f"! host {host} did not list its containers: {shown(reason, 300)}", err=True)
    if found.unreachable or found.failed:
        sys.exit(ExitCode.FAILED)
