"""Deploying one fleet host with the configured NixOS deploy tool (config.json deployCommand).

colmena (`colmena apply --on {host}`, the default), deploy-rs or `nixos-rebuild switch
--target-host {reach}`: devbox fills in the template for the host and runs it from the config
repository (where the flake is), handing each output line on as it comes. It never builds a
shell line: the template is an argv.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from devbox.tools import process, templates


def command(template: Sequence[str], *, host: str, reach: str, flake: Path) -> list[str]:
    """The deploy argv for one host."""
    return templates.fill(tuple(template), {"host": host, "reach": reach, "flake": str(flake)})


def deploy(
    template: Sequence[str],
    *,
    host: str,
    reach: str,
    flake: Path,
    on_line: Callable[[str], None],
) -> process.Result:
    """Run the deploy tool for one host from the config repository; its exit code decides."""
    return run(command(template, host=host, reach=reach, flake=flake), flake, on_line)


def run(argv: Sequence[str], flake: Path, on_line: Callable[[str], None]) -> process.Result:
    """Run a filled-in deploy command from the config repository, line by line."""
    return process.run_lines(argv, on_line, cwd=flake)
