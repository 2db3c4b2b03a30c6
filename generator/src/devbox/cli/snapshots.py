"""devbox-ctl snapshots: see the snapshots one may restore, their sizes and quotas; remove some."""

from __future__ import annotations

from typing import Any

import click

from devbox.cli.options import as_json, echo_json, runtime


@click.command()
@click.option(
    "--prune",
    "prune",
    metavar="ID",
    multiple=True,
    help="Remove this snapshot (repeat for more); see the ids in the list.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@as_json
@click.pass_context
def command(ctx: click.Context, prune: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """List your snapshots (admins: all) with id, container, date and size, and the quotas.

    Every destroy first keeps a snapshot of the volume, within the quotas of users.nix
    (containers.maxSnapshotsPerUser, maxSnapshotBytesPerUser and the host's
    maxSnapshotsGlobal, maxSnapshotBytesGlobal). --prune ID removes one of yours for good
    (admins: anyone's), which makes room for the next.
    """
    from devbox.lifecycle import snapshots  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import fleet, listing  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    fleet.not_here(rt, "snapshots")
    if prune:
        if not yes:
            click.confirm(
                f"Remove {', '.join(prune)} for good (no restore from it afterwards)?",
                abort=True,
                err=True,
            )
        gone = snapshots.remove(rt, list(prune))
        if as_json:
            echo_json({"removed": [s.id for s in gone]})
            return
        for snapshot in gone:
            click.echo(f"Removed snapshot {snapshot.id} ({snapshot.container}, {snapshot.owner}).")
        return
    overview = listing.snapshot_overview(rt)
    if as_json:
        echo_json(overview.as_json())
        return
    _print(overview.shown, overview.quotas)


def _print(shown: list[Any], quotas: dict[str, Any]) -> None:
    from devbox import clock  # noqa: PLC0415 - keep --help fast
    from devbox.lifecycle.snapshot_quota import size  # noqa: PLC0415 - keep --help fast

    for s in shown:
        click.echo(
            f"{s.id}  {s.container} ({s.owner})  {clock.timestamp(s.created)}  "
            f"{size(s.stored)} on disk ({size(s.size)} archive)"
        )
    if not shown:
        click.echo("No snapshots.")
    rows = [*quotas["users"].items(), ("the host", quotas["host"])]
    for whose, use in rows:
        click.echo(
            f"{whose}: {use['count']} of {use['maxCount']} snapshots, "
            f"{size(use['stored'])} of {size(use['maxStored'])} on disk"
        )
