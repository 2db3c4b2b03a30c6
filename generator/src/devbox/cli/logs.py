"""devbox-ctl logs: a container's output."""

from __future__ import annotations

import sys

import click

from devbox.cli.options import runtime


@click.command()
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output.")
@click.option("--since", help='Only output since a time or duration, e.g. "1h" or "2026-11-26".')
@click.pass_context
def command(ctx: click.Context, name: str, follow: bool, since: str | None) -> None:
    """Show the output of NAME (podman logs)."""
    from devbox.host import identity  # noqa: PLC0415 - keep --help fast
    from devbox.tools import process  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    container = rt.container(name)
    identity.authorize(rt.caller, container.owner, name, "read the logs of")
    argv = rt.podman(container.owner).logs_argv(name, follow=follow, since=since)
    sys.exit(process.run_attached(argv))
