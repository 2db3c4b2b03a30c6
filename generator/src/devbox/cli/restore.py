"""devbox-ctl restore: bring a destroyed container's snapshot back as a new container."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from devbox.cli.options import as_json, echo_json, in_fleet, runtime, wait_for_tailnet

if TYPE_CHECKING:
    from devbox.host.context import Runtime


# What `restore --list` says when there is nothing to restore (not an empty screen).
_NONE = "No snapshots"


@click.command()
@click.argument("name", required=False)
@click.option(
    "--from", "snapshot", metavar="SNAPSHOT", help="Which snapshot (default: the latest of NAME)."
)
@click.option(
    "--as", "as_name", metavar="NEWNAME", help="The new container's name (default: NAME)."
)
@click.option("--list", "list_snapshots", is_flag=True, help="Show the snapshots you may restore.")
@click.option("--no-apply", is_flag=True, help="Record and commit, but print the rebuild command.")
@wait_for_tailnet
@as_json
@click.pass_context
def command(
    ctx: click.Context,
    name: str | None,
    snapshot: str | None,
    as_name: str | None,
    list_snapshots: bool,
    no_apply: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Restore NAME from its latest snapshot (or --from SNAPSHOT), as NAME or --as NEWNAME.

    The new container gets the snapshot's files in /home/dev and its settings (CPU, memory,
    Syncthing), joins the tailnet as a new node with a fresh key, and counts against the
    owner's limits. Snapshots are taken before every destroy and kept snapshotRetentionDays.
    In a fleet the container is restored on the host that holds the snapshot.
    """
    from devbox.errors import UsageError  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import reach, restore  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx, changes=not list_snapshots)
    if in_fleet(rt):
        _fleet(rt, name, snapshot, as_name, list_snapshots, no_apply, timeout, as_json)
        return
    if list_snapshots:
        shown = restore.restorable(rt, name)
        if as_json:
            echo_json(shown)
            return
        for s in shown:
            click.echo(
                f"{s['id']}  {s['container']} ({s['owner']})  {s['created']}  {s['size']} bytes"
            )
        if not shown:
            click.echo(_NONE + (f" of {name}." if name else "."))
        return
    if name is None:
        raise UsageError("restore needs NAME (or --list)")
    done = restore.restore(
        rt,
        name,
        snapshot_id=snapshot,
        as_name=as_name,
        apply=not no_apply,
        timeout=timeout,
        progress=(lambda _line: None) if as_json else click.echo,
    )
    c = done.container
    if as_json:
        echo_json(done.as_json())
        return
    click.echo(f"Restored {c.name} (owner {c.owner}) from {done.snapshot.id}.")
    if done.joined:
        click.echo(reach.in_short(c))


def _fleet(
    rt: Runtime,
    name: str | None,
    snapshot: str | None,
    as_name: str | None,
    list_snapshots: bool,
    no_apply: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Restore in a fleet: on the host that holds the snapshot (runtime/fleet.py)."""
    from devbox.errors import ExitCode, UsageError  # noqa: PLC0415 - keep --help fast
    from devbox.escaping import shown  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import fleet, reach  # noqa: PLC0415 - keep --help fast

    if list_snapshots:
        found = fleet.restorable(rt, name)
        if as_json:
            echo_json({"snapshots": found.rows, "unreachable": found.silent})
        else:
            for s in found.rows:
                words = (s.get(key) for key in ("id", "container", "owner", "created", "size"))
                sid, container, owner, created, size = (shown(word, 100) for word in words)
                click.echo(f"{sid}  {container} ({owner})  {created}  {size} bytes  on {s['host']}")
            if not found.rows:
                # Said only when every host answered: a silent host may hold some.
                missing = _NONE + (f" of {name}" if name else "")
                click.echo(
                    f"{missing} on the hosts that answered." if found.silent else f"{missing}."
                )
            for host, why in sorted(found.silent.items()):
                click.echo(f"! host {host} did not answer ({shown(why, 300)})", err=True)
        if found.silent:
            sys.exit(ExitCode.FAILED)
        return
    if name is None:
        raise UsageError("restore needs NAME (or --list)")
    done = fleet.restore(
        rt,
        name,
        snapshot_id=snapshot,
        as_name=as_name,
        apply=not no_apply,
        timeout=timeout,
        progress=(lambda _line: None) if as_json else click.echo,
    )
    c = done.container
    if as_json:
        echo_json(done.as_json())
        return
    click.echo(f"Restored {c.name} (owner {c.owner}) on {done.host} from {done.snapshot}.")
    if done.joined:
        click.echo(reach.in_short(c))
