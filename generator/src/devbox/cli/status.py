"""devbox-ctl status: one container in full, and where declaration and reality disagree."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from devbox.cli import names
from devbox.cli.options import as_json, echo_json, in_fleet, runtime, when
from devbox.errors import ExitCode

if TYPE_CHECKING:
    from devbox.runtime.listing import View


def _active_since(view: View) -> str:
    """The " since <UTC time>" of the systemd line, when the manager says when."""
    since = view.active_since()
    if since is None:
        return ""
    return f" since {when(since)} UTC"


def _text(view: View, *, why: bool) -> list[str]:
    from devbox.escaping import shown  # noqa: PLC0415 - keep --help fast

    c, a, unit = view.container, view.assessment, view.unit
    syncthing = "on" if c.syncthing else "off"
    since = f" since {view.started_at}" if view.started_at and view.actual == "running" else ""
    volume = {True: "present", False: "MISSING", None: "unknown"}[view.volume]
    secret = {True: "present", False: "MISSING", None: "unknown"}[view.secret]
    lines = [
        f"{c.name} (owner {c.owner})",
        f"  declared:   {c.state} ({c.cpu} CPUs, {c.memory}, Syncthing {syncthing}), "
        f"created {when(c.created)}",
        f"  actual:     {view.actual}{since}",
        f"  systemd:    {c.service} {unit.get('ActiveState', 'unknown')} "
        f"({unit.get('SubState', '?')}){_active_since(view)}",
        f"  podman:     volume {c.volume} {volume}, key secret {secret}",
    ]
    if view.node is not None:
        node = view.node
        where = f" as {node.dns_name} ({' '.join(node.addresses)})" if node.dns_name else ""
        lines.append(f"  tailscale:  {node.backend}{where}")
    if a is not None:
        lines.append(
            f"  activity:   last {'unknown' if a.activity_unknown else when(a.last_activity)}; "
            f"idle stop {when(a.stop_at)}; "
            f"destroy {when(a.destroy_at)} (UTC)"
        )
    if c.pin is not None:
        lines.append(f"  pinned:     until {c.pin.until.isoformat()}: {c.pin.reason}")
    if c.stopped_at is not None:
        lines.append(f"  stopped:    {when(c.stopped_at)}")
    lines += [f"  ! {shown(line, 1000)}" for line in view.disagreements]
    if why and a is not None:
        # Reasons and signals quote the container's files: escaped again, whatever made them.
        lines.append(f"  lifecycle:  {a.action}")
        lines += [f"    - {shown(reason, 1000)}" for reason in a.reasons]
        lines += [
            f"    {shown(name)}: {shown(json.dumps(value, default=str), 2000)}"
            for name, value in sorted(a.signals.items())
        ]
    return lines


@click.command()
@click.argument("name", shell_complete=names.containers)
@click.option("--why", is_flag=True, help="Explain the lifecycle: every signal, the rule applied.")
@as_json
@click.pass_context
def command(ctx: click.Context, name: str, why: bool, as_json: bool) -> None:
    """Show NAME: declared and actual state, systemd, podman, Tailscale, activity.

    Says plainly when the declared state and the actual state disagree, with the command
    that resolves it. Exit 1 when they disagree.
    """
    from devbox import clock  # noqa: PLC0415 - keep --help fast
    from devbox.host import identity  # noqa: PLC0415 - keep --help fast
    from devbox.runtime import listing  # noqa: PLC0415 - keep --help fast

    rt = runtime(ctx)
    if in_fleet(rt):
        from devbox.runtime import fleet_views  # noqa: PLC0415 - keep --help fast

        text, code = fleet_views.status(rt, name, why=why, as_json=as_json)
        click.echo(text, nl=False)
        sys.exit(code)
    container = rt.container(name)
    identity.authorize(rt.caller, container.owner, name, "see")
    view = listing.view(rt, container, clock.now(), detail=True)
    if as_json:
        echo_json(listing.status_json(view, why=why))
    else:
        click.echo("\n".join(_text(view, why=why)))
    if view.disagreements:
        sys.exit(ExitCode.CHANGES)
