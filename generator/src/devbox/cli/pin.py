"""devbox-ctl pin: exempt a container from idle stop and auto-destroy until a day."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import click

from devbox.cli import names
from devbox.cli.options import as_json, echo_json, in_fleet, runtime
from devbox.errors import UsageError

if TYPE_CHECKING:
    from devbox.declare.resolve import Container


def _day(value: str) -> date:
    from devbox import rules  # noqa: PLC0415 - keep --help fast

    parsed = rules.parse_day(value)
    if parsed is None:
        raise UsageError(
            f"--until: {value!r} is not a day", hint="write the pin's last day like 2026-12-24"
        )
    return parsed


@click.command()
@click.argument("name", required=False, shell_complete=names.containers)
@click.option(
    "--until", "until", metavar="DATE", help="The last day of the pin (UTC), e.g. 2026-12-24."
)
@click.option("--reason", help="Why, in one line (shown to admins and in the event log).")
@click.option("--list", "list_pins", is_flag=True, help="Show the pins you may see (admins: all).")
@as_json
@click.pass_context
def command(
    ctx: click.Context,
    name: str | None,
    until: str | None,
    reason: str | None,
    list_pins: bool,
    as_json: bool,
) -> None:
    """Pin NAME until the end of DATE (UTC): no idle stop, no auto-destroy before then.

    A pin reaches at most containers.maxPinDays ahead; each user holds at most
    containers.maxPinsPerUser pins. Users pin their own containers, admins any. Pinning a
    pinned container replaces its pin. `devbox-ctl unpin NAME` ends it.
    """
    from devbox import clock  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import pins  # noqa: PLC0415 - keep --help fast

    # What the user typed is checked first: a day that is not one is refused before anything.
    day = None if list_pins or until is None else _day(until)
    rt = runtime(ctx, changes=not list_pins)
    if list_pins:
        shown = pins.pinned(rt)
        if as_json:
            echo_json(shown)
        for row in [] if as_json else shown:
            click.echo(f"{row['name']} ({row['owner']}): until {row['until']}: {row['reason']}")
        return
    if name is None or day is None or reason is None:
        raise UsageError("pin needs NAME, --until DATE and --reason TEXT (or --list)")
    from devbox.runtime import fleet  # noqa: PLC0415 - keep --help fast

    def pin() -> Container:
        return pins.pin(rt, name, day, reason, clock.now())

    # In a fleet the pin reaches the container's host (its cleanup reads its slice) now.
    container = fleet.deploy_after(rt, pin, progress=click.echo) if in_fleet(rt) else pin()
    if as_json:
        echo_json({"name": container.name, "until": until, "reason": reason.strip()})
    else:
        click.echo(f"Pinned {name} until the end of {until} (UTC): {reason.strip()}")
