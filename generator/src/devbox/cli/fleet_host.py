"""devbox-ctl fleet-host OP: what the control host asks of this fleet host, over SSH, as root.

Hidden from --help: it is not for people. Root only (exit 4 otherwise), and not a runtime
verb a user may hand to the privileged path (cli.RUNTIME_VERBS): it writes any user's volume
and secret on the control host's word, which only root's SSH session from the control host
carries. Each op prints one JSON object, except export, whose output is the tar stream.
"""

from __future__ import annotations

import os
import sys

import click

from devbox.cli.options import LOCAL, echo_json, runtime, wait_for_tailnet


def _root_only(ctx: click.Context) -> None:
    from devbox.cli import Session  # noqa: PLC0415 - keep --help fast
    from devbox.errors import NotAllowedError  # noqa: PLC0415 - keep --help fast

    session = ctx.find_root().obj
    if os.geteuid() != 0 or (isinstance(session, Session) and session.privileged):
        raise NotAllowedError(
            "devbox-ctl fleet-host is run by root, from the control host over SSH",
            hint="use the verbs without fleet-host (devbox-ctl list, create, …)",
        )


@click.group(hidden=True)
@click.pass_context
def command(ctx: click.Context) -> None:
    """Member operations the control host runs over SSH (docs/fleet.md)."""
    _root_only(ctx)
    # Every op acts on this host's own deployed slice, also on the control host.
    ctx.find_root().meta[LOCAL] = True


def _target(function: click.decorators.FC) -> click.decorators.FC:
    function = click.option("--owner", required=True, help="The container's owner.")(function)
    return click.argument("name")(function)


@command.command()
def deployed() -> None:
    """The host name and the SHA-256 of its deployed slice manifest (null: none)."""
    from devbox.host import hostconfig  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import fleet_host  # noqa: PLC0415 - keep --help fast

    # Only config.json: before the first deploy there is no declaration to read.
    config = hostconfig.load(hostconfig.locate(privileged=False))
    echo_json(fleet_host.deployed_state(config))


@command.command("set-key")
@_target
@click.pass_context
def set_key(ctx: click.Context, name: str, owner: str) -> None:
    """Set NAME's Tailscale auth key from standard input (never an argument)."""
    from devbox.runtime import fleet_host  # noqa: PLC0415 - keep --help fast

    stdin = sys.stdin.buffer
    echo_json(fleet_host.set_key(runtime(ctx), name, owner, stdin))


@command.command()
@_target
@click.option("--sizes", is_flag=True, help="Print the volume's sizes as JSON, not the stream.")
@click.pass_context
def export(ctx: click.Context, name: str, owner: str, sizes: bool) -> None:
    """Write NAME's volume to standard output as a tar stream."""
    from devbox.runtime import fleet_host  # noqa: PLC0415 - keep --help fast

    if sizes:
        echo_json(fleet_host.sizes(runtime(ctx), name, owner))
        return
    fleet_host.export(runtime(ctx), name, owner, sys.stdout.buffer)


_BYTES = click.IntRange(min=0)


@command.command("import")
@_target
@click.option("--allocated", type=_BYTES, help="What the volume takes on disk at its source.")
@click.option("--apparent", type=_BYTES, help="The length of the volume's files at its source.")
@click.option("--check", is_flag=True, help="Only say whether it fits this host's quota.")
@click.pass_context
def import_(
    ctx: click.Context,
    name: str,
    owner: str,
    allocated: int | None,
    apparent: int | None,
    check: bool,
) -> None:
    """Fill a fresh volume of NAME from the tar stream on standard input."""
    from devbox.runtime import fleet_host  # noqa: PLC0415 - keep --help fast

    stdin = sys.stdin.buffer
    echo_json(
        fleet_host.import_volume(
            runtime(ctx), name, owner, stdin, allocated=allocated, apparent=apparent, check=check
        )
    )


@command.command()
@_target
@click.option("--no-snapshot", is_flag=True, help="Do not save the volume before removing it.")
@click.option("--keep-volume", is_flag=True, help="Remove the key only; keep the volume.")
@click.option(
    "--created",
    help="Its creation time as the control host declares it: another NAME here is refused.",
)
@click.pass_context
def purge(
    ctx: click.Context,
    name: str,
    owner: str,
    no_snapshot: bool,
    keep_volume: bool,
    created: str | None,
) -> None:
    """Snapshot NAME's volume (as destroy does), then remove it and its key."""
    from devbox.runtime import fleet_host  # noqa: PLC0415 - keep --help fast

    echo_json(
        fleet_host.purge(
            runtime(ctx),
            name,
            owner,
            snapshot=not no_snapshot,
            keep_volume=keep_volume,
            created=created,
        )
    )


@command.command()
@_target
@click.pass_context
def volume(ctx: click.Context, name: str, owner: str) -> None:
    """Whether NAME's volume exists on this host."""
    from devbox.runtime import fleet_host  # noqa: PLC0415 - keep --help fast

    echo_json(fleet_host.volume(runtime(ctx), name, owner))


@command.command()
@_target
@wait_for_tailnet
@click.pass_context
def relogin(ctx: click.Context, name: str, owner: str, timeout: float) -> None:
    """Log NAME out, restart it with its new key, wait until it joined (rotate-key)."""
    from devbox.runtime import fleet_host  # noqa: PLC0415 - keep --help fast

    echo_json(fleet_host.relogin(runtime(ctx), name, owner, timeout=timeout))


# This host's side of the fleet's views: the verbs themselves, on the deployed slice.


@command.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Every container of this host, as `list --all --json` shows them."""
    from devbox.cli import list_ as verb  # noqa: PLC0415 - keep --help fast

    ctx.invoke(verb.command, all_users=True, as_json=True)


@command.command()
@click.argument("name")
@click.option("--why", is_flag=True, help="Explain the lifecycle.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, name: str, why: bool, as_json: bool) -> None:
    """NAME as `status` shows it (exit 1: declared and actual disagree)."""
    from devbox.cli import status as verb  # noqa: PLC0415 - keep --help fast

    ctx.invoke(verb.command, name=name, why=why, as_json=as_json)


@command.command()
@click.option("--dry-run", is_flag=True, help="Assess only; send no warning.")
@click.pass_context
def cleanup(ctx: click.Context, dry_run: bool) -> None:
    """The host's cleanup as JSON: assessments, and (not a dry run) its warnings sent.

    Stops and destroys are the control host's to do: they are assessed here, not done.
    """
    from devbox.cli import cleanup as verb  # noqa: PLC0415 - keep --help fast

    ctx.invoke(verb.command, dry_run=dry_run, as_json=True)


@command.command()
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output.")
@click.option("--since", help="Only output since a time or duration.")
@click.pass_context
def logs(ctx: click.Context, name: str, follow: bool, since: str | None) -> None:
    """NAME's output, as `logs` shows it."""
    from devbox.cli import logs as verb  # noqa: PLC0415 - keep --help fast

    ctx.invoke(verb.command, name=name, follow=follow, since=since)


# restore in a fleet: this host holds the snapshot; its own restore checks and fills.


@command.command()
@click.argument("name", required=False)
@click.pass_context
def snapshots(ctx: click.Context, name: str | None) -> None:
    """The snapshots held here (of container NAME), as `restore --list --json` shows them."""
    from devbox.runtime import fleet_host  # noqa: PLC0415 - keep --help fast

    echo_json(fleet_host.snapshots_here(runtime(ctx), name))


@command.command()
@_target
@click.option("--from", "snapshot", required=True, metavar="SNAPSHOT", help="Which snapshot.")
@click.option("--as", "as_name", required=True, metavar="NEWNAME", help="The new container.")
@click.option(
    "--created",
    help="NEWNAME's creation time as the control host declares it: another NEWNAME is refused.",
)
@click.option("--check", is_flag=True, help="Only check the snapshot and the volume name.")
@click.option("--replace", is_flag=True, help="Resuming: an undeclared NEWNAME's volume goes.")
@click.pass_context
def restore(
    ctx: click.Context,
    name: str,
    owner: str,
    snapshot: str,
    as_name: str,
    created: str | None,
    check: bool,
    replace: bool,
) -> None:
    """Fill NEWNAME's new volume from snapshot SNAPSHOT of NAME (restore, on this host)."""
    from devbox.runtime import fleet_host  # noqa: PLC0415 - keep --help fast

    echo_json(
        fleet_host.restore_here(
            runtime(ctx),
            name,
            owner,
            snapshot,
            as_name=as_name,
            created=created,
            check=check,
            replace=replace,
        )
    )
