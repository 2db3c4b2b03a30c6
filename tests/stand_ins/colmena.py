"""Stands in for `colmena apply`, deploying the test hosts of a simulated fleet.

Follows colmena 0.4.0, the version nixpkgs packages (pkgs/by-name/co/colmena/package.nix,
stored version 04e8a174; docs/tools-checked.md), read at the tag v0.4.0 (5fdd743a):
- The command line (clap 4.2.7, src/cli.rs and src/command/apply.rs): `colmena [global
  options] apply [GOAL] [options]`; GOAL one of build, push, switch, boot, test,
  dry-activate, keys (default switch); `--on NODES` selects nodes (src/util.rs
  `register_selector_args`): comma-separated names with globs, `@tag` for tags. An unknown
  argument: clap's "error: unexpected argument 'X' found", a usage line, exit 2. The
  stand-in implements the goal `switch` and node names with globs; another goal, a tag or
  an option it does not implement is refused, exit 2, saying so.
- The hive is found by searching upwards from the working directory for flake.nix or
  hive.nix (cli.rs, `--config`); none: the operation fails.
- Nodes selected: "[INFO ] Selected N out of M hosts."; none: "[WARN ] No hosts selected
  (0 skipped)." and exit 0 (src/nix/hive/mod.rs `select_nodes`: nothing deployed, success).
- Progress goes to stderr, one line per event, "LABEL | text" (src/progress/plain.rs,
  labels right-aligned to the longest node name); env_logger lines "[LEVEL] text".
  Activation succeeded: "Activation successful" (goal.rs `success_str`). A failed node:
  "[ERROR] Failed to deploy to NODE - Last N lines of logs:" with its lines, then
  "[ERROR] -----", "[ERROR] Operation failed with error: …" and exit 1
  (src/job.rs `finish`, src/troubleshooter.rs `run_wrapped`). The other nodes are still
  deployed (each node is its own job).
What a switch does on a node is what tests/stand_ins/nixos_rebuild.py does on a host: that
stand-in runs in the node's environment, with the node's slice of the generated tree
(generated/hosts/NODE) as the configuration to activate.

The fleet: $DEVBOX_TEST_FLEET names a JSON file {"generated": DIR, "hosts": {NODE: {"env":
{...}, "down": bool, "failDeploy": bool}}}. A node that is "down" fails at the push
("Push failed"), one with "failDeploy" at the activation, before anything switched (it
keeps its configuration). Each call is recorded in
$DEVBOX_TEST_CALLS (argv, working directory, the nodes deployed).
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

GOALS = ("build", "push", "switch", "boot", "test", "dry-activate", "keys")
USAGE = "Usage: colmena apply [OPTIONS] [goal]"
# Options of `colmena apply` at v0.4.0 that take a value, and flags; all accepted, none
# changes what the stand-in does except --on.
VALUED = {"--on", "--eval-node-limit", "-p", "--parallel", "--evaluator"}
FLAGS = {
    "--keep-result",
    "-v",
    "--verbose",
    "--no-keys",
    "--no-substitute",
    "--no-substitutes",
    "--no-gzip",
    "--build-on-target",
    "--no-build-on-target",
    "--force-replace-unknown-profiles",
}
NOT_IMPLEMENTED = {"--reboot", "-f", "--config", "--nix-option", "--impure", "--show-trace"}
STAND_INS = Path(__file__).resolve().parent


def clap_error(word: str) -> None:
    sys.stderr.write(
        f"error: unexpected argument '{word}' found\n\n{USAGE}\n\nFor more information, "
        "try '--help'.\n"
    )
    sys.exit(2)


def refuse(message: str) -> None:
    sys.stderr.write(f"colmena (stand-in): {message}\n")
    sys.exit(2)


def check_goal(word: str) -> str:
    if word not in GOALS:
        sys.stderr.write(
            f"error: invalid value '{word}' for '[goal]'\n  [possible values: "
            f"{', '.join(GOALS)}]\n\nFor more information, try '--help'.\n"
        )
        sys.exit(2)
    if word != "switch":
        refuse(f"only the goal switch is implemented, not {word}")
    return word


def parse(argv: list[str]) -> str | None:
    """The --on filter (the goal is switch)."""
    if not argv or argv[0] != "apply":
        refuse(f"only `apply` is implemented, not {argv[:1]}")
    goal, on, index = None, None, 1
    while index < len(argv):
        word = argv[index]
        index += 1
        name, equals, value = word.partition("=")
        if name in NOT_IMPLEMENTED:
            refuse(f"{name} is not implemented")
        if name in VALUED:
            if not equals:
                if index >= len(argv):
                    sys.stderr.write(
                        f"error: a value is required for '{name} <NODES>' but none was "
                        f"supplied\n\nFor more information, try '--help'.\n"
                    )
                    sys.exit(2)
                value = argv[index]
                index += 1
            if name == "--on":
                on = value
        elif word in FLAGS:
            continue
        elif word.startswith("-"):
            clap_error(word)
        elif goal is None:
            goal = check_goal(word)
        else:
            clap_error(word)
    return on


def find_hive() -> Path:
    for directory in [Path.cwd(), *Path.cwd().parents]:
        for name in ("flake.nix", "hive.nix"):
            if (directory / name).is_file():
                return directory / name
    log("ERROR", "-----")
    log("ERROR", "Operation failed with error: Hive configuration file does not exist")
    sys.exit(1)


def log(level: str, text: str) -> None:
    sys.stderr.write(f"[{level:<5}] {text}\n")
    sys.stderr.flush()


def select(on: str | None, nodes: list[str]) -> list[str]:
    if on is None:
        return nodes
    rules = on.split(",")
    if any(not rule for rule in rules):
        log("ERROR", "-----")
        log("ERROR", "Operation failed with error: Filter rule cannot be empty")
        sys.exit(1)
    if any(rule.startswith("@") for rule in rules):
        refuse("tags (@tag) are not implemented")
    return [n for n in nodes if any(fnmatch.fnmatchcase(n, rule) for rule in rules)]


def activate(node: str, entry: dict[str, object], generated: Path) -> tuple[bool, list[str]]:
    """switch-to-configuration on the node: the nixos-rebuild stand-in in its environment."""
    environment = {str(k): str(v) for k, v in dict(entry["env"]).items()}  # type: ignore[arg-type]
    environment["DEVBOX_TEST_GENERATED"] = str(generated / "hosts" / node)
    result = subprocess.run(
        [sys.executable, str(STAND_INS / "nixos_rebuild.py"), "switch"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    return result.returncode == 0, lines


def deploy(node: str, entry: dict[str, object], generated: Path, width: int) -> list[str]:
    """Deploy one node; the lines of a failure (empty: it succeeded)."""

    def say(text: str) -> None:
        sys.stderr.write(f"{node:>{width}} | {text}\n")
        sys.stderr.flush()

    if not (generated / "hosts" / node / "manifest.json").is_file():
        say("Evaluation failed: the flake's node has no devbox slice")
        return [f"error: the generated tree has no slice hosts/{node}"]
    say(f"Evaluated {node}")
    say(f"Built {node}")
    if entry.get("down"):
        failure = f"ssh: connect to host {node} port 22: Connection refused"
        say(f"Push failed: {failure}")
        return [failure]
    say("Pushed system closure")
    say("Activating system profile")
    if entry.get("failDeploy"):
        # Made to fail before switching: the node keeps the configuration it had.
        ok, lines = False, ["stand-in: activation made to fail for this node"]
    else:
        ok, lines = activate(node, entry, generated)
    for line in lines:
        say(line)
    if ok:
        say("Activation successful")
        return []
    say("Activation failed: switch-to-configuration failed")
    return lines[-10:] or ["activation failed"]


def main() -> None:
    argv = sys.argv[1:]
    on = parse(argv)
    find_hive()
    fleet = json.loads(Path(os.environ["DEVBOX_TEST_FLEET"]).read_text())
    hosts: dict[str, dict[str, object]] = fleet["hosts"]
    generated = Path(fleet["generated"])
    log("INFO", "Enumerating nodes...")
    chosen = select(on, sorted(hosts))
    with Path(os.environ["DEVBOX_TEST_CALLS"]).open("a") as calls:
        entry = {"name": "colmena", "argv": argv, "cwd": str(Path.cwd()), "nodes": chosen}
        calls.write(json.dumps(entry) + "\n")
    if not chosen:
        log("WARN", "No hosts selected (0 skipped).")
        return
    if len(chosen) == len(hosts):
        log("INFO", f"Selected all {len(chosen)} nodes.")
    else:
        log("INFO", f"Selected {len(chosen)} out of {len(hosts)} hosts.")
    width = max(len(node) for node in chosen)
    failed = {node: deploy(node, hosts[node], generated, width) for node in chosen}
    failed = {node: lines for node, lines in failed.items() if lines}
    if failed:
        for node, lines in failed.items():
            log("ERROR", f"Failed to deploy to {node} - Last {len(lines)} lines of logs:")
            for line in lines:
                log("ERROR", line)
        log("ERROR", "-----")
        log("ERROR", "Operation failed with error: Child process exited with error code: 1")
        sys.exit(1)
    sys.stderr.write(f"{'':>{width}} | All done!\n")


main()
