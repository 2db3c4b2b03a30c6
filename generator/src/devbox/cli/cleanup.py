"""devbox-ctl cleanup: warn, stop idle containers, destroy long-stopped ones (the daily timer)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import click

from devbox.cli.options import as_json, echo_json, in_fleet, runtime
from devbox.errors import ExitCode

if TYPE_CHECKING:
    from devbox.host.context import Runtime
    from devbox.runtime.cleanup import Outcome, Row

HEADLINES = {
    "none": "nothing to do",
    "warn-stop": "warn: stops at {stop}",
    "stop": "STOP now",
    "warn-destroy": "warn: destroyed at {destroy}",
    "destroy": "DESTROY now (after a snapshot)",
    "refuse-destroy": "refuse to destroy: unsaved work",
}


def _stamp(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(row: Row, dry_run: bool) -> list[str]:
    from devbox.escaping import shown  # noqa: PLC0415 - keep --help fast

    c, a = row.container, row.assessment
    headline = HEADLINES[a.action].format(stop=_stamp(a.stop_at), destroy=_stamp(a.destroy_at))
    done = "" if dry_run or not row.done else f"  -> {row.done}"
    failed = f"  FAILED: {shown(row.error, 500)}" if row.error else ""
    lines = [f"{c.name} ({c.owner}, {c.state}): {headline}{done}{failed}"]
    # Reasons and signals quote the container's files: escaped again, whatever made them.
    lines += [f"    {shown(reason, 1000)}" for reason in a.reasons]
    signals = {k: v for k, v in a.signals.items() if k not in ("created", "stoppedAt", "pin")}
    lines += [
        f"    {shown(name)}: {shown(json.dumps(value, sort_keys=True), 2000)}"
        for name, value in sorted(signals.items())
    ]
    return lines


def _summary(report: Outcome) -> str:
    return (
        f"{report.count('stop')} to stop, {report.count('destroy')} to destroy, "
        f"{report.count('warn-stop', 'warn-destroy')} to warn, "
        f"{report.count('refuse-destroy')} refused, {report.count('none')} with nothing to do; "
        f"{len(report.pruned)} snapshots past their retention"
    )


@click.command()
@click.option(
    "--dry-run", is_flag=True, help="Show what would happen, when and why; change nothing."
)
@as_json
@click.pass_context
def command(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Warn, stop idle containers and destroy long-stopped ones, by the users.nix policy.

    Each container's assessment is shown with its reasons and every signal's last-seen
    time. --dry-run changes nothing (users see their own containers; acting needs an admin or
    root, as the daily timer runs it). Exit 3 when an action failed (the others still ran).
    """
    from devbox import clock  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import cleanup  # noqa: PLC0415 - keep --help fast

    # On a fleet member (and for `fleet-host cleanup`) cleanup warns only: the stops and
    # destroys are the control host's (runtime/cleanup.py).
    rt = runtime(ctx)
    if in_fleet(rt):
        _fleet(rt, dry_run=dry_run, as_json=as_json)
        return
    now = clock.now()
    # The rebuild's output, live; the report follows.
    progress = (lambda _line: None) if as_json else click.echo
    report = cleanup.run(rt, now, dry_run=dry_run, progress=progress)
    if as_json:
        echo_json(report.as_json())
    else:
        mode = "dry run: nothing is changed" if dry_run else "acting"
        click.echo(f"devbox cleanup at {_stamp(now)} ({mode})")
        for row in report.rows:
            click.echo("\n".join(_row(row, dry_run)))
        click.echo(("Would: " if dry_run else "Done: ") + _summary(report))
        if report.applied:
            click.echo("Applied the changed declaration.")
        from devbox.escaping import shown  # noqa: PLC0415 - keep --help fast

        for error in report.errors:
            click.echo(f"error: {shown(error, 600)}", err=True)
    if report.errors:
        sys.exit(ExitCode.FAILED)


def _fleet(rt: Runtime, *, dry_run: bool, as_json: bool) -> None:
    """A fleet's cleanup: each host's assessments, the stops and destroys done from here."""
    from devbox.escaping import shown  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import fleet_views  # noqa: PLC0415 - keep --help fast

    progress = (lambda _line: None) if as_json else click.echo
    report = fleet_views.cleanup(rt, dry_run=dry_run, progress=progress)
    if as_json:
        echo_json(report.as_json())
    else:
        mode = "dry run: nothing is changed" if dry_run else "acting"
        click.echo(f"devbox cleanup of the fleet ({mode})")
        for row in report.rows:
            action = HEADLINES.get(str(row.get("action")), str(row.get("action")))
            headline = action.format(
                stop=row.get("stopAt") or "-", destroy=row.get("destroyAt") or "-"
            )
            done = f"  -> {row['done']}" if row.get("done") and not dry_run else ""
            failed = f"  FAILED: {row['error']}" if row.get("error") else ""
            click.echo(
                shown(
                    f"{row.get('host')}: {row.get('name')} ({row.get('owner')}, "
                    f"{row.get('state')}): {headline}{done}{failed}",
                    1000,
                )
            )
        for host, reason in sorted(report.unreachable.items()):
            click.echo(f"host {host} is unreachable ({shown(reason, 300)}): not assessed")
        for error in report.errors:
            click.echo(f"error: {shown(error, 600)}", err=True)
    if report.errors:
        sys.exit(ExitCode.FAILED)
