"""devbox-ctl: the command line. Thin: parse options, call one function, map to an exit code.

Subcommands are imported only when they run, so `devbox-ctl --help` and shell completion stay
fast; heavy libraries (pydantic, jinja2, deepdiff) are imported inside the commands.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from devbox import timings
from devbox.cli import names
from devbox.errors import DevboxError, ExitCode, NotAllowedError, ToolError

# Each command's module imports only click at the top, so listing them all stays cheap.
COMMANDS: dict[str, str] = {
    "generate": "devbox.cli.generate",
    "check": "devbox.cli.check",
    "plan": "devbox.cli.plan",
    "create": "devbox.cli.create",
    "list": "devbox.cli.list_",
    "status": "devbox.cli.status",
    "start": "devbox.cli.start",
    "stop": "devbox.cli.stop",
    "destroy": "devbox.cli.destroy",
    "connect": "devbox.cli.connect",
    "logs": "devbox.cli.logs",
    "rotate-key": "devbox.cli.rotate_key",
    "pin": "devbox.cli.pin",
    "unpin": "devbox.cli.unpin",
    "cleanup": "devbox.cli.cleanup",
    "restore": "devbox.cli.restore",
    "snapshots": "devbox.cli.snapshots",
    "events": "devbox.cli.events",
    "monitor": "devbox.cli.monitor",
    "keepalive": "devbox.cli.keepalive",
    "deploy": "devbox.cli.deploy",
    "move": "devbox.cli.move",
    "drain": "devbox.cli.drain",
    "apply": "devbox.cli.apply",
    "completion": "devbox.cli.completion",
    "fleet-host": "devbox.cli.fleet_host",
}
# Verbs that act on the host: run as root, or handed to the privileged path by a user.
# Not fleet-host: only root runs it (the control host, over SSH); a user gets exit 4.
RUNTIME_VERBS = frozenset(
    {
        "create",
        "list",
        "status",
        "start",
        "stop",
        "destroy",
        "connect",
        "logs",
        "rotate-key",
        "pin",
        "unpin",
        "cleanup",
        "restore",
        "snapshots",
        "events",
        "deploy",
        "move",
        "drain",
    }
)


@dataclass(frozen=True)
class Session:
    """How this process was started: directly, or through the privileged path."""

    privileged: bool = False
    sudo_uid: str | None = None
    config_path: Path | None = None


INTERNAL_ERROR = 70
# Not offered as a near miss: not for people (hidden from --help too).
HIDDEN = frozenset({"fleet-host"})
# The width of a verb's line in --help is the terminal's: its description is never cut short.
WHOLE = 10_000


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 - click's API
        """All commands, in the order of COMMANDS."""
        return list(COMMANDS)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """A verb that is not one is a usage error offering the near misses, as options are."""
        name = args[0]
        if name not in COMMANDS and not ctx.resilient_parsing and not name.startswith("-"):
            raise click.exceptions.NoSuchCommand(
                name, possibilities=[verb for verb in COMMANDS if verb not in HIDDEN], ctx=ctx
            )
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each verb with its whole first sentence (click cuts it to fit one line)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=WHOLE)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        """Import the command's module on first use."""
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name])
        command: click.Command = module.command
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="devbox", prog_name="devbox-ctl")
@click.option("--debug", is_flag=True, help="Show debug logs and tracebacks.")
@click.option("--timings", is_flag=True, help="Say on stderr where the command's time went.")
def cli(debug: bool, timings: bool) -> None:
    """Self-hosted development containers declared in Nix.

    Exit codes: 0 ok; 1 drift or pending change; 2 bad input or usage (nothing was changed);
    3 a tool or service failed; 4 not allowed.
    """


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("DEVBOX_DEBUG", "") not in ("", "0")


def _fail(lines: list[str], code: int, hint: str = "") -> None:
    for line in lines:
        click.echo(f"error: {line}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(code)


def _near(words: list[str] | None) -> str:
    """The hint "did you mean …?" for click's near misses; "" when there are none."""
    if not words:
        return ""
    return f"did you mean {' or '.join(words)}?"


def _usage(exc: click.ClickException) -> tuple[str, str]:
    """A usage error of click's in devbox's voice: what is wrong, then the near miss or help.

    click would print "Usage: …" and "Error: …"; every other error of devbox-ctl is an
    `error: …` line and a `hint: …` line, and so are these.
    """
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if isinstance(ctx, click.Context) else "devbox-ctl"
    helped = f"{where} --help shows what it takes"
    if isinstance(exc, click.exceptions.NoSuchCommand):
        verbs = f"{where} --help lists the commands"
        return f"{where}: no command is named {exc.command_name!r}", _near(
            exc.possibilities
        ) or verbs
    if isinstance(exc, click.NoSuchOption):
        near = _near(exc.possibilities)
        return f"{where}: no such option {exc.option_name}", near or helped
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter):
        param = exc.param
        if isinstance(param, click.Option):
            named = max(param.opts, key=len)
        elif param is not None:
            named = param.human_readable_name
        else:
            return f"{where}: {exc.message.rstrip('.')}", helped
        return f"{where} {named}: {exc.message.rstrip('.')}", helped
    text = exc.format_message().rstrip(".")
    return f"{where}: {text[:1].lower()}{text[1:]}", helped


def _verb(args: list[str]) -> str | None:
    return next((arg for arg in args if not arg.startswith("-")), None)


def _privileged_command() -> str | None:
    """config.json's privilegedCommand, read as JSON only; None when it names none.

    The caller's side only hands the verb over to sudo, and root reads and checks the whole
    system config itself: validating it here too cost a user seconds at every verb (pydantic
    and the declaration's modules, `--timings` in the host test).
    """
    try:
        command = names.config_document().get("privilegedCommand")
    except names.UNREADABLE:
        return None
    return command if isinstance(command, str) and command.startswith("/") else None


def _through_sudo(args: list[str]) -> None:
    """Hand a runtime verb to the privileged path: the user's own devbox-ctl cannot act."""
    command = _privileged_command()
    if command is None:
        # What is wrong with the file is the full reader's to say.
        from devbox.host import hostconfig  # noqa: PLC0415 - start-up: only when it is needed

        command = hostconfig.load(hostconfig.locate(privileged=False)).privileged_command
    if not command:
        raise NotAllowedError(
            "devbox-ctl needs root for this, and no privileged command is configured",
            hint="run it as root, or enable services.devbox (it installs the sudo rule)",
        )
    if timings.enabled():
        # The caller's share ends here: exec replaces this process, and root's says the rest.
        for line in timings.report("caller"):
            click.echo(line, err=True)
        args = ["--timings", *args]
    try:
        os.execvp("sudo", ["sudo", "-n", "--", command, *args])  # noqa: S606, S607
    except OSError as exc:
        raise ToolError(
            f"a program devbox needs is missing: sudo ({exc.strerror})",
            hint="install sudo (services.devbox installs its rule), or run the verb as root",
        ) from exc


def main(argv: list[str] | None = None, *, session: Session | None = None) -> Any:
    """The console script: run the CLI and turn every failure into a message and exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    # --debug and --timings are accepted anywhere on the line, not only before the subcommand.
    if "--timings" in args:
        timings.enable()
    args = [arg for arg in args if arg not in ("--debug", "--timings")]
    try:
        return _main(args, debug, session or Session())
    finally:
        if timings.enabled():
            who = "root" if (session and session.privileged) or os.geteuid() == 0 else "caller"
            for line in timings.report(who):
                click.echo(line, err=True)
            timings.finish()


def _main(args: list[str], debug: bool, session: Session) -> Any:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    try:
        if (
            not session.privileged
            and _verb(args) in RUNTIME_VERBS
            and os.geteuid() != 0
            and not {"-h", "--help"} & set(args)
        ):
            _through_sudo([*(["--debug"] if debug else []), *args])
        code = cli.main(args, prog_name="devbox-ctl", standalone_mode=False, obj=session)
        # Without standalone mode click returns the code of ctx.exit() instead of exiting.
        if isinstance(code, int) and code:
            sys.exit(code)
    except DevboxError as exc:
        if debug:
            traceback.print_exc()
        _fail(exc.lines(), exc.exit_code, exc.hint)
    except click.exceptions.Abort:
        _fail(["aborted"], ExitCode.BAD_INPUT)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        message, hint = _usage(exc)
        _fail([message], ExitCode.BAD_INPUT, hint)
    except Exception as exc:
        if debug:
            raise
        _fail(
            [f"internal error: {type(exc).__name__}: {exc}"],
            INTERNAL_ERROR,
            "this is a bug in devbox-ctl; rerun with --debug and report the traceback",
        )
    return None
