"""Options shared by the declarative commands."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from devbox.host.context import Runtime

F = TypeVar("F", bound=Callable[..., Any])

PATH = click.Path(path_type=Path, dir_okay=False)

# A wait in seconds (--timeout): a positive, finite number, a day at most.
MOST_SECONDS = 24 * 3600


def seconds(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    """The callback of a --timeout option: click's float type lets NaN and infinity through."""
    if not (math.isfinite(value) and 0 < value <= MOST_SECONDS):
        raise click.BadParameter(f"{value:g} is not a number of seconds from 0 to {MOST_SECONDS}")
    return value


# --timeout of the verbs that wait for a container to join the tailnet.
wait_for_tailnet = click.option(
    "--timeout",
    type=float,
    callback=seconds,
    default=300,
    show_default=True,
    help="Seconds to wait for the tailnet.",
)


def inputs(command: F) -> F:
    """--users, --containers and --out, with the defaults of the design."""
    command = click.option(
        "--out",
        type=click.Path(path_type=Path, file_okay=False),
        help="Generated directory.  [default: generated/ beside users.nix]",
    )(command)
    command = click.option(
        "--containers",
        type=PATH,
        help="The containers file.  [default: containers.json beside users.nix]",
    )(command)
    return click.option(
        "--users", type=PATH, help="The users and policy file.  [default: ./users.nix]"
    )(command)


def as_json(command: F) -> F:
    """--json: print one JSON document instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)


def echo_json(value: Any) -> None:
    """Print a JSON document the way every --json output is printed."""
    click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


# Set by `fleet-host`: the runtime reads this host's deployed slice (host/context.py).
LOCAL = "devbox.local"


def runtime(ctx: click.Context, *, changes: bool = False) -> Runtime:
    """The runtime context of this command (built once).

    changes: the verb changes the declaration or what runs; a fleet member refuses it (exit 2)
    before anything is done, since only the control host edits the fleet's declaration.
    """
    from devbox.cli import Session  # noqa: PLC0415 - keep --help fast
    from devbox.host import context  # noqa: PLC0415 - keep --help fast

    root = ctx.find_root()
    cached = root.meta.get("devbox.runtime")
    if cached is None:
        session = root.obj if isinstance(root.obj, Session) else Session()
        cached = context.build(
            privileged=session.privileged,
            sudo_uid=session.sudo_uid,
            config_path=session.config_path,
            local=bool(root.meta.get(LOCAL)),
        )
        root.meta["devbox.runtime"] = cached
    if changes:
        cached.require_declaration_here()
    return cached


def in_fleet(rt: Runtime) -> bool:
    """Whether this command runs the fleet's verb (the control host of a declared fleet)."""
    from devbox.host import fleet  # noqa: PLC0415 - keep --help fast

    return fleet.is_fleet(rt)


def when(value: datetime | None) -> str:
    """A time for a table: UTC, to the minute; '-' for none."""
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")
