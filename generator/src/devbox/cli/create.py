"""devbox-ctl create: declare a container, apply it, and wait until it is on the tailnet."""

from __future__ import annotations

import click

from devbox.cli import names
from devbox.cli.options import in_fleet, runtime, wait_for_tailnet
from devbox.errors import UsageError


@click.command()
@click.argument("name")
@click.option("--with-syncthing", "syncthing", is_flag=True, help="Run Syncthing in it.")
@click.option("--cpu", type=float, help="CPUs (default: defaultCpu of users.nix).")
@click.option("--memory", help='Memory, e.g. "8G" (default: defaultMemory of users.nix).')
@click.option("--owner", help="Create it for another user (admins).")
@click.option(
    "--host",
    shell_complete=names.hosts,
    help="In a fleet: the host to put it on (default: the one with most room).",
)
@click.option(
    "--label", "labels", multiple=True, help="In a fleet: a host label it needs, e.g. gpu."
)
@click.option("--no-apply", is_flag=True, help="Record and commit, but print the rebuild command.")
@wait_for_tailnet
@click.pass_context
def command(
    ctx: click.Context,
    name: str,
    syncthing: bool,
    cpu: float | None,
    memory: str | None,
    owner: str | None,
    host: str | None,
    labels: tuple[str, ...],
    no_apply: bool,
    timeout: float,
) -> None:
    """Create the container NAME and print how to connect to it.

    NAME becomes the Tailscale host name: 3-63 lowercase letters, digits and hyphens. The
    change is checked against your limit and the host's, committed to the config repository,
    applied with the rebuild command, and the container's Tailscale auth key is fetched from
    1Password into its podman secret (never an argument, never a file). Exit 3 if it does not
    join the tailnet within --timeout seconds.
    """
    from devbox.runtime import fleet, operations, reach  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx, changes=True)
    if in_fleet(rt):
        placed = fleet.create(
            rt,
            name,
            owner=owner,
            cpu=cpu,
            memory=memory,
            syncthing=syncthing,
            host=host,
            labels=labels,
            apply=not no_apply,
            timeout=timeout,
            progress=click.echo,
        )
        if not placed.joined:
            click.echo(f"\nOnce deployed, {name} joins the tailnet on {placed.host}.")
            return
        click.echo(f"\n{name} is on the tailnet, on {placed.host}.\n")
        click.echo("\n".join(reach.instructions(placed.container)))
        return
    if host is not None or labels:
        raise UsageError(
            "--host and --label are for a fleet: users.nix declares no hosts",
            hint="declare the hosts in users.nix (docs/fleet.md)",
        )
    created = operations.create(
        rt,
        name,
        owner=owner,
        cpu=cpu,
        memory=memory,
        syncthing=syncthing,
        apply=not no_apply,
        timeout=timeout,
        progress=click.echo,
    )
    if created.joined:
        click.echo(f"\n{name} is on the tailnet.\n")
    else:
        click.echo(f"\nOnce applied, {name} joins the tailnet; then:\n")
    click.echo("\n".join(reach.instructions(created.container, created.node)))
