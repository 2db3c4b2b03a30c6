"""Stands in for `syncthing` in the entrypoint tests (tests/image/entrypoint_harness.py).

Follows Syncthing v2.1.2 and v2.0.16 (nixos-26.05 ships the 2.x series; the command line of
both is the same): cmd/syncthing/main.go (`CLI`, `serveCmd`), cmd/syncthing/generate/
generate.go (`generate.CLI`), parsed by kong v1.15.0 (Syncthing's go.mod). As there:
- `--home/-H`, `--config/-C`, `--data/-D` and `--version` are global and may follow the
  command; `serve` is the default command ("withargs"); every other flag belongs to one command.
- An unknown flag: "syncthing: error: unknown flag --NAME" (kong's unknownFlagError, with
  ", did you mean …?" for a candidate within Levenshtein distance 2 or with the name as
  prefix), exit 80 (kong's exitUsageError). Syncthing 2 has no `--no-default-folder` (removed
  by commit 50480b89f, "remove default folder concept"), no `--gui-address` on generate, no
  `--no-browser` on generate.
- --home with --config/--data, or only one of --config/--data: the errors of
  setConfigDataLocationsFromFlags(), exit 80.
- `generate --gui-password=-` reads the password from the first line of stdin; generate writes
  config.xml, cert.pem and key.pem in the config directory and exits 0.
- `serve` runs until SIGTERM. The STGUIADDRESS, STGUIAPIKEY, STNOBROWSER, STNOUPGRADE, …
  environment variables are the `env:` tags of serveCmd (SERVE_ENV).
It records argv (one JSON list a line) in $STANDIN_LOG/syncthing.argv, its environment in
syncthing.env and a SIGTERM in syncthing.signals, as the harness's other stand-ins do.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

# flag → takes a value (a string or number); False: a bool flag.
GLOBAL = {"config": True, "data": True, "home": True, "version": False, "help": False}
GLOBAL_SHORT = {"C": "config", "D": "data", "H": "home", "h": "help"}
SERVE = {
    "allow-newer-config": False,
    "audit": False,
    "auditfile": True,
    "db-maintenance-interval": True,
    "db-delete-retention-interval": True,
    "gui-address": True,
    "gui-apikey": True,
    "log-file": True,
    "logfile": True,  # alias of log-file
    "logflags": True,
    "log-level": True,
    "log-max-old-files": True,
    "log-max-size": True,
    "log-format-timestamp": True,
    "log-format-level-string": False,
    "no-log-format-level-string": False,  # negatable
    "log-format-level-syslog": False,
    "no-log-format-level-syslog": False,  # negatable
    "no-browser": False,
    "no-port-probing": False,
    "no-restart": False,
    "no-upgrade": False,
    "paused": False,
    "unpaused": False,
    "debug-gui-assets-dir": True,
    "debug-perf-stats": False,
    "debug-profile-block": False,
    "debug-profile-cpu": False,
    "debug-profile-heap": False,
    "debug-profiler-listen": True,
    "debug-reset-delta-idxs": False,
}
GENERATE = {"gui-user": True, "gui-password": True, "no-port-probing": False}
COMMANDS = {
    "serve": SERVE,
    "generate": GENERATE,
    "browser": {},
    "device-id": {},
    "paths": {},
    "version": {},
}
# The environment variables serveCmd reads (its env: tags), and generate's.
SERVE_ENV = {
    "STALLOWNEWERCONFIG",
    "STAUDIT",
    "STAUDITFILE",
    "STDBMAINTENANCEINTERVAL",
    "STDBDELETERETENTIONINTERVAL",
    "STGUIADDRESS",
    "STGUIAPIKEY",
    "STLOGFILE",
    "STLOGLEVEL",
    "STLOGMAXOLDFILES",
    "STLOGMAXSIZE",
    "STLOGFORMATTIMESTAMP",
    "STLOGFORMATLEVELSTRING",
    "STLOGFORMATLEVELSYSLOG",
    "STNOBROWSER",
    "STNOPORTPROBING",
    "STNORESTART",
    "STNOUPGRADE",
    "STPAUSED",
    "STUNPAUSED",
    "STGUIASSETS",
    "STPERFSTATS",
    "STBLOCKPROFILE",
    "STCPUPROFILE",
    "STHEAPPROFILE",
    "STPROFILER",
    "STCONFDIR",
    "STDATADIR",
    "STHOMEDIR",
    "STTRACE",
    "STVERSIONEXTRA",
}
EXIT_USAGE = 80


def fail(message: str) -> None:
    sys.stderr.write(f"syncthing: error: {message}\n")
    sys.exit(EXIT_USAGE)


def levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def unknown(flag: str, candidates: list[str]) -> None:
    close = [f'"{c}"' for c in candidates if c.startswith(flag) or levenshtein(c, flag) <= 2]
    message = f"unknown flag {flag}"
    if len(close) == 1:
        message += f", did you mean {close[0]}?"
    elif close:
        message += f", did you mean one of {', '.join(close)}?"
    fail(message)


def parse(argv: list[str]) -> tuple[str, dict[str, str]]:
    """The command and its flags (global ones included), as kong parses them."""
    command, flags, index = "", {}, 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if not arg.startswith("-"):
            if command or arg not in COMMANDS:
                fail(f"unexpected argument {arg}")
            command = arg
            continue
        table = {**GLOBAL, **COMMANDS.get(command or "serve", {})}
        if arg.startswith("--"):
            name, equals, value = arg[2:].partition("=")
        elif arg[1:2] in GLOBAL_SHORT:
            name, equals, value = GLOBAL_SHORT[arg[1:2]], "", arg[2:]
            equals = "=" if value else ""
        else:
            fail(f"unknown flag {arg}")
        if name not in table:
            unknown(f"--{name}", [f"--{option}" for option in table])
        if table[name] and not equals:
            if index >= len(argv):
                fail(f"--{name}: expected string value but got EOL")
            value = argv[index]
            index += 1
        flags[name] = value if table[name] else "true"
    command = command or "serve"
    home, config, data = flags.get("home"), flags.get("config"), flags.get("data")
    if bool(config) != bool(data):
        fail(
            "either both or none of --config and --data must be given, use --home to set both at once"
        )
    if home and data:
        fail("--home must not be used together with --config and --data")
    return command, flags


def on_term(_number: int, _frame: object) -> None:
    with (Path(os.environ["STANDIN_LOG"]) / "syncthing.signals").open("a") as signals:
        signals.write("TERM\n")
    sys.exit(0)


def main() -> None:
    log_dir = Path(os.environ["STANDIN_LOG"])
    signal.signal(signal.SIGTERM, on_term)
    with (log_dir / "syncthing.argv").open("a") as log:
        log.write(json.dumps(sys.argv[1:]) + "\n")
    with (log_dir / "syncthing.env").open("a") as log:
        log.write("".join(f"{key}={value}\n" for key, value in os.environ.items()))
    command, flags = parse(sys.argv[1:])
    home = Path(flags.get("home") or flags.get("config") or Path.home() / ".local/state/syncthing")
    if command == "generate":
        password = flags.get("gui-password", "")
        if password == "-":
            password = sys.stdin.readline().rstrip("\n")
            (log_dir / "received-gui-password").write_text(password)
        home.mkdir(parents=True, exist_ok=True)
        for name in ("cert.pem", "key.pem"):
            (home / name).write_text("stand-in\n")
        user = flags.get("gui-user", "")
        (home / "config.xml").write_text(
            f'<configuration version="51"><gui><user>{user}</user></gui></configuration>\n'
        )
        return
    if command == "serve":
        while True:
            time.sleep(0.05)


if __name__ == "__main__":
    main()
