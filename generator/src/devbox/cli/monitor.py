"""devbox-ctl monitor: the activity monitor, run by the image's entrypoint inside a container."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import click

from devbox.errors import UsageError


@click.command()
@click.option(
    "--interval",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Seconds between looks.",
)
def command(interval: int) -> None:
    """Record when this container was last used, until SIGTERM.

    Reads HOME and CONTAINER_NAME from the environment and rewrites
    $HOME/.local/state/devbox/activity.json about once a minute: open SSH sessions, the
    code-server heartbeat, connected Zed clients, keep-alive leases. Exits 0 on SIGTERM or
    SIGINT after a last write; 2 when CONTAINER_NAME or HOME is missing.
    """
    from devbox.container import monitor  # noqa: PLC0415 - keep --help fast

    container, home = os.environ.get("CONTAINER_NAME", ""), os.environ.get("HOME", "")
    if not container or not home:
        raise UsageError(
            "CONTAINER_NAME and HOME must be set",
            hint="the image's entrypoint runs devbox-ctl monitor with both",
        )
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda _number, _frame: stop.set())
    monitor.Monitor(Path(home), container, interval=interval).run(stop)
