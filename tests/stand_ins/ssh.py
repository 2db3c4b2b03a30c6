"""Stands in for the OpenSSH client `ssh`, reaching the test hosts of a simulated fleet.

Follows OpenSSH 10.2p1 (openssh-portable tag V_10_2_P1, d01efaa1c9ed; docs/tools-checked.md
says how the version was chosen), ssh.c `main()` and sshconnect.c, as far as devbox uses it:
- Options are parsed with the getopt string of ssh.c, "1246ab:c:e:fgi:kl:m:no:p:qstvx
  AB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy", by OpenBSD's getopt (openbsd-compat, since glibc
  has no optreset): options stop at the first word that is not one, or after `--`. A letter
  outside the string: "unknown option -- Z" and the usage (10.2p1's text), exit 255; one
  that needs an argument and has none: "option requires an argument -- o", usage, exit 255
  (the first lines and exit codes compared with the real ssh on the test machine by
  tests/test_stand_ins.py). Options the stand-in does not implement are refused with a
  message that says so (exit 255).
- After the destination, without `--` before it, ssh parses options again (`goto again`):
  the stand-in does the same, so `ssh host -v cmd` takes -v as ssh's.
- `-o Keyword=Value` (or `Keyword Value`): keywords are case-insensitive; the stand-in knows
  BatchMode (yes/no), ConnectTimeout (seconds), StrictHostKeyChecking, UserKnownHostsFile,
  IdentityFile, IdentitiesOnly, User, Port, LogLevel, ServerAliveInterval and
  ServerAliveCountMax. Another keyword: "command-line: line 0: Bad configuration option:
  keyword", exit 255 (readconf.c; real ssh knows more keywords, the stand-in refuses them).
- The destination is `[user@]host`. The remote command is the words after it joined with
  single spaces (ssh.c: `sshbuf_putf(command, "%s%s", i ? " " : "", av[i])`), which the
  target's login shell parses: here `sh -c LINE` in the target host's environment, from its
  base directory, with this process's stdin, stdout and stderr (so streams pass through).
  Its exit status is ssh's.
- The fleet: $DEVBOX_TEST_FLEET names a JSON file {"hosts": {NAME: {"reach": "root@alpha",
  "env": {...}, "home": "/…", "down": false, "auth": "key"}}}. A destination that is no
  host's reach (nor its host part): "ssh: Could not resolve hostname X: Name or service not
  known", exit 255. A host that is "down": "ssh: connect to host X port 22: Connection
  refused", exit 255 (sshconnect.c `ssh_connect_direct()`). A host with "auth": "password"
  accepts no key: with BatchMode=yes, "USER@X: Permission denied (publickey,password).",
  exit 255; without BatchMode real ssh would prompt on the terminal, which the stand-in
  refuses (exit 255) so that a prompt can never hang a test.
Each call is recorded in $DEVBOX_TEST_CALLS (argv, destination, the remote line) without
reading stdin, which belongs to the remote command.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

GETOPT = "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy"
USAGE = """usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface] [-b bind_address]
           [-c cipher_spec] [-D [bind_address:]port] [-E log_file]
           [-e escape_char] [-F configfile] [-I pkcs11] [-i identity_file]
           [-J destination] [-L address] [-l login_name] [-m mac_spec]
           [-O ctl_cmd] [-o option] [-P tag] [-p port] [-R address]
           [-S ctl_path] [-W host:port] [-w local_tun[:remote_tun]]
           destination [command [argument ...]]
       ssh [-Q query_option]
"""
# Options devbox or an admin's sshCommand may use, and what the stand-in does with them.
IMPLEMENTED = set("46CTnqvilpo")
KEYWORDS = {
    "batchmode",
    "connecttimeout",
    "stricthostkeychecking",
    "userknownhostsfile",
    "identityfile",
    "identitiesonly",
    "user",
    "port",
    "loglevel",
    "serveraliveinterval",
    "serveralivecountmax",
}
EXIT = 255


def fail(message: str, *, usage: bool = False) -> None:
    sys.stderr.write(message + "\n")
    if usage:
        sys.stderr.write(USAGE)
    sys.exit(EXIT)


def option(text: str, settings: dict[str, str]) -> None:
    """One -o argument, as readconf.c `process_config_line()` reads it."""
    keyword, _, value = text.replace("=", " ", 1).strip().partition(" ")
    keyword, value = keyword.lower(), value.strip()
    if keyword not in KEYWORDS:
        fail(f"command-line: line 0: Bad configuration option: {keyword}")
    if not value:
        fail("command-line line 0: Missing argument.")
    if keyword == "batchmode" and value.lower() not in ("yes", "no"):
        fail(f'command-line line 0: unsupported option "{value}".')
    if keyword == "connecttimeout" and not value.isdigit():
        fail("command-line line 0: invalid time value.")
    settings.setdefault(keyword, value)  # ssh keeps the first value of a keyword


def letter_option(letter: str, value: str, settings: dict[str, str]) -> None:
    """What an option with an argument sets."""
    if letter == "o":
        option(value, settings)
    elif letter == "l":
        settings.setdefault("user", value)
    elif letter == "p":
        settings.setdefault("port", value)


def cluster(word: str, args: list[str], index: int, settings: dict[str, str]) -> int:
    """One word of option letters (`-o`, `-46`, `-oBatchMode=yes`); the next index."""
    position = 1
    while position < len(word):
        letter = word[position]
        position += 1
        spec = GETOPT.find(letter)
        if letter == ":" or spec < 0:
            fail(f"unknown option -- {letter}", usage=True)
        if letter not in IMPLEMENTED:
            fail(f"ssh (stand-in): option -{letter} is not implemented here")
        if spec + 1 < len(GETOPT) and GETOPT[spec + 1] == ":":
            if position < len(word):
                value = word[position:]
            elif index < len(args):
                value = args[index]
                index += 1
            else:
                fail(f"option requires an argument -- {letter}", usage=True)
            letter_option(letter, value, settings)
            break
    return index


def getopt(args: list[str], settings: dict[str, str]) -> tuple[list[str], bool]:
    """Parse options from the front of args; return the rest and whether `--` ended them."""
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":
            return args[index + 1 :], True
        if not word.startswith("-") or word == "-":
            return args[index:], False
        index = cluster(word, args, index + 1, settings)
    return [], False


def parse(argv: list[str]) -> tuple[dict[str, str], str, list[str]]:
    """Settings, destination and remote words, as ssh.c `main()` finds them."""
    settings: dict[str, str] = {}
    rest, terminated = getopt(argv, settings)
    if not rest:
        sys.stderr.write(USAGE)
        sys.exit(EXIT)
    destination, rest = rest[0], rest[1:]
    if rest and not terminated:
        rest, _ = getopt(rest, settings)
    return settings, destination, rest


def target(destination: str) -> tuple[str, dict[str, object]]:
    """The fleet host a destination names."""
    fleet = json.loads(Path(os.environ["DEVBOX_TEST_FLEET"]).read_text())
    hostname = destination.rpartition("@")[2]
    for entry in fleet["hosts"].values():
        reach = str(entry["reach"])
        if destination == reach or hostname == reach.rpartition("@")[2]:
            return hostname, entry
    fail(f"ssh: Could not resolve hostname {hostname}: Name or service not known")
    raise AssertionError  # fail exits


def record(destination: str, line: str) -> None:
    entry = {"name": "ssh", "argv": sys.argv[1:], "destination": destination, "remote": line}
    with Path(os.environ["DEVBOX_TEST_CALLS"]).open("a") as log:
        log.write(json.dumps(entry) + "\n")


def main() -> None:
    settings, destination, words = parse(sys.argv[1:])
    line = " ".join(words)
    record(destination, line)
    hostname, host = target(destination)
    port = settings.get("port", "22")
    if host.get("down"):
        fail(f"ssh: connect to host {hostname} port {port}: Connection refused")
    user = settings.get("user") or (destination.rpartition("@")[0] or "root")
    if host.get("auth") == "password":
        if settings.get("batchmode", "no").lower() == "yes":
            fail(f"{user}@{hostname}: Permission denied (publickey,password).")
        fail("ssh (stand-in): would prompt for a password on the terminal (no BatchMode=yes)")
    if not words:
        fail("ssh (stand-in): an interactive session is not implemented here")
    environment = {str(k): str(v) for k, v in dict(host["env"]).items()}  # type: ignore[arg-type]
    os.chdir(str(host["home"]))
    sys.stdout.flush()
    os.execve("/bin/sh", ["sh", "-c", line], environment)


main()
