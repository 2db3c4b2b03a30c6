"""devbox-privileged: the one command the sudo rule lets every devbox user run as root.

A user cannot edit the config repository, rebuild the system or read the 1Password token;
devbox-ctl, run by a user, hands the runtime verbs to `sudo -n devbox-privileged VERB …`. This
entry point trusts nothing the caller controls: the caller is the uid sudo recorded in
SUDO_UID, the configuration is only /etc/devbox/config.json (DEVBOX_CONFIG is ignored), only
the runtime verbs run (none of them takes a path to read or write), and identity.authorize
lets users act on their own containers and admins on all.

Nor does the caller's environment or working directory reach any program it runs: every one
starts with the config's fixed `privilegedEnvironment` (its PATH included) from `/`
(process.confined), and the process itself forgets the environment it was started with. The
sudo rule resets the environment too (nixos/orchestrator.nix); this does not depend on it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from devbox.cli import RUNTIME_VERBS, Session, main
from devbox.errors import DevboxError, ExitCode
from devbox.host import hostconfig
from devbox.tools import process


def run(
    argv: list[str], *, sudo_uid: str | None, config_path: Path = hostconfig.SYSTEM_CONFIG
) -> None:
    """Run a runtime verb for the caller sudo named."""
    verb = next((arg for arg in argv if not arg.startswith("-")), None)
    if verb not in RUNTIME_VERBS:
        print(
            f"error: devbox-privileged runs only: {', '.join(sorted(RUNTIME_VERBS))}",
            file=sys.stderr,
        )
        sys.exit(ExitCode.BAD_INPUT)
    if sudo_uid is None:
        print("error: devbox-privileged is run through sudo (SUDO_UID is not set)", file=sys.stderr)
        sys.exit(ExitCode.DENIED)
    session = Session(privileged=True, sudo_uid=sudo_uid, config_path=config_path)
    with process.confined(_environment(config_path)), contextlib.chdir("/"):
        main(argv, session=session)


def _environment(config_path: Path) -> dict[str, str]:
    """The fixed environment of every program this runs, from the config (root's file)."""
    try:
        return dict(hostconfig.load(config_path).privileged_environment)
    except DevboxError:
        # The verb reports the unreadable config itself; until then, nothing of the caller's.
        return {"PATH": hostconfig.DEFAULT_PATH}


def entry() -> None:
    """The console script: as root, through sudo."""
    if os.geteuid() != 0:
        print("error: devbox-privileged must run as root, through sudo", file=sys.stderr)
        sys.exit(ExitCode.DENIED)
    sudo_uid = os.environ.get("SUDO_UID")
    # Nothing below may read the caller's environment (DEVBOX_DEBUG, HOME, locale, …).
    os.environ.clear()
    os.environ.update(process.CONFINED_BASE)
    run(sys.argv[1:], sudo_uid=sudo_uid)
