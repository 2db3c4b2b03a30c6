"""devbox-ctl completion: the shell completion script."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def command(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash: eval "$(devbox-ctl completion bash)"   (e.g. in ~/.bashrc)
    zsh:  eval "$(devbox-ctl completion zsh)"    (e.g. in ~/.zshrc)
    fish: devbox-ctl completion fish > ~/.config/fish/completions/devbox-ctl.fish
    """  # noqa: D301 - click needs a real backspace ("\b", not r"\b") to keep these lines
    from devbox.cli import cli  # noqa: PLC0415 - keep --help fast: the group loads this module when it runs

    completion = get_completion_class(shell)
    if completion is None:  # click knows every choice above
        raise click.UsageError(f"no completion for {shell}")
    click.echo(completion(cli, {}, "devbox-ctl", "_DEVBOX_CTL_COMPLETE").source())
