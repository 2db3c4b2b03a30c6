"""devbox-ctl list: your containers (admins: --all), declared and actual."""

from __future__ import annotations

import click

from devbox.cli.options import as_json, echo_json, runtime, when
from devbox.errors import UsageError

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
                when(a.last_activity if a else None),
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
