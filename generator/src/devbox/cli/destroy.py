"""devbox-ctl destroy: remove a container, its key, its volume (after a snapshot), its device."""

from __future__ import annotations

import click

from devbox.cli import names
from devbox.cli.options import in_fleet, runtime


@click.command()
@click.argument("name", shell_complete=names.containers)
@click.option("--keep-volume", is_flag=True, help="Keep the volume (its data) for later.")
@click.option("--no-snapshot", is_flag=True, help="Do not save the volume before removing it.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-apply", is_flag=True, help="Record and commit, but print the rebuild command.")
@click.pass_context
def command(
    ctx: click.Context, name: str, keep_volume: bool, no_snapshot: bool, yes: bool, no_apply: bool
) -> None:
    """Destroy NAME: stop it, remove its declaration, key, volume and Tailscale device.

    Before the volume is removed it is exported to the snapshot directory (devbox-ctl restore
    brings it back) unless --no-snapshot; --keep-volume keeps it where it is instead. A
    snapshot over the snapshot quotas stops the destroy with nothing removed (devbox-ctl
    snapshots shows them and prunes).
    """
    from devbox.runtime import fleet, operations  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx, changes=True)
    container = rt.container(name)
    where = f" on {container.host}" if container.host else ""
    again = f" --host {container.host}" if container.host else ""
    if not yes:
        what = "keeping its volume" if keep_volume else f"and its volume {container.volume}"
        click.confirm(
            f"Destroy {name} (owner {container.owner}){where}, {what}?", abort=True, err=True
        )
    verb = fleet.destroy if in_fleet(rt) else operations.destroy
    done = verb(
        rt,
        name,
        keep_volume=keep_volume,
        snapshot=not no_snapshot,
        apply=not no_apply,
        progress=click.echo,
    )
    if done.kept_volume:
        click.echo(
            f"Kept the volume {done.kept_volume} in {container.owner}'s podman storage{where} "
            f"(podman volume inspect {done.kept_volume}). To use it again: devbox-ctl create "
            f"{name}{again} (the same name mounts it). To delete it: sudo -u {container.owner} "
            f"podman volume rm {done.kept_volume}"
        )
    for device in done.devices_removed:
        click.echo(f"Removed the Tailscale device {device}.")
    if done.device_note:
        click.echo(done.device_note)
    click.echo(f"Destroyed {name}{where}.")
