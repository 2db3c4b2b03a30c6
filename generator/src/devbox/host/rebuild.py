"""The rebuild: the configured command (nixos-rebuild switch), run on the host.

One rebuild at a time: a lock in the state directory makes a second one wait, and it then
applies both changes.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from devbox import write
from devbox.errors import ToolError
from devbox.host.hostconfig import HostConfig
from devbox.tools import process


def command_line(config: HostConfig) -> str:
    """The rebuild command as a person would type it."""
    return shlex.join(config.rebuild_command)


def run(config: HostConfig, on_line: Callable[[str], None]) -> None:
    """Run the rebuild command, passing each line of its output on; raise if it fails."""
    with write.locked(write.ensure_directory(config.state_dir)):
        result = process.run_lines(config.rebuild_command, on_line)
    if not result.ok:
        raise ToolError(
            f"{command_line(config)} failed (exit {result.returncode})",
            hint="the change is committed in the config repository; fix what the output above "
            f"says and run `sudo {command_line(config)}`",
        )


def run_or_print(config: HostConfig, run_now: bool, progress: Callable[[str], None]) -> bool:
    """Rebuild now, showing its output, or (--no-apply) print the command; whether it ran."""
    if not run_now:
        progress(f"Not applied (--no-apply). To apply: sudo {command_line(config)}")
        return False
    progress(f"Applying: {command_line(config)}")
    run(config, lambda line: progress(f"  {line}"))
    return True
