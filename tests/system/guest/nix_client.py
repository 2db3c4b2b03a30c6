"""The host test's Nix steps inside a dev container (step 9 of guest/scenario.py).

Runs as the container's user dev with the image's python3, and does what a developer would:
Nix commands through the host's nix-daemon (the unit's NIX_REMOTE=daemon), each timed. What they
did is one JSON document on stdout; the scenario asserts on it and on the host's state. It comes
on stdin, with its parameters as the one argument:

    podman exec -i CONTAINER python3 - PARAMS_JSON < nix_client.py

PARAMS_JSON: action ("build", "rebuild", "tools" or "attack"), nonce, expression (the text of
guest/nix-steps.nix), kept (the kept path: rebuild, attack), other (another owner: attack).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOME = Path(os.environ.get("HOME", "/home/dev"))
WORK = HOME / "devbox-nix-test"
ROOTS = Path("/nix/var/nix/gcroots/devbox")
OWNER = os.environ.get("DEVBOX_OWNER", "")
CONTAINER = os.environ.get("CONTAINER_NAME", "")
TIMEOUT = 600


def command(argv: list[str], cwd: Path | None = None) -> dict[str, Any]:
    start = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT,
            check=False,
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired:
        code, out, err = -1, "", f"timed out after {TIMEOUT} s"
    except OSError as exc:
        code, out, err = -2, "", f"{type(exc).__name__}: {exc}"
    return {
        "argv": argv,
        "exit": code,
        "stdout": out[-4000:],
        "stderr": err[-4000:],
        "seconds": round(time.monotonic() - start, 2),
    }


def link(path: Path) -> str | None:
    return str(path.readlink()) if path.is_symlink() else None


def attempt(action: Any) -> str:
    """What happened when the container's user tried something: "done" or the error."""
    try:
        action()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "done"


def path_info(path: str) -> dict[str, Any]:
    """Whether the daemon has the path, and when it was registered."""
    result = command(["nix", "path-info", "--json", path])
    info: dict[str, Any] | None = None
    if result["exit"] == 0:
        # {path: info}, with null for a path the store does not have (a list before Nix 2.19)
        parsed = json.loads(result["stdout"])
        info = parsed[0] if isinstance(parsed, list) else parsed.get(path)
    return {
        "valid": info is not None,
        "registrationTime": (info or {}).get("registrationTime"),
        "result": result,
    }


def copy(source: str, target: Path) -> None:
    """A program of the image copied with its mode: in the image's store path that is 0555 (Nix
    registers a path read-only), so a copy made by an earlier step is replaced, not rewritten."""
    target.unlink(missing_ok=True)
    shutil.copy(source, target)


def prepare(params: dict[str, Any]) -> list[str]:
    """The expression and the tools it adds to the store; the installables' arguments."""
    tools = WORK / "tools" / "bin"
    tools.mkdir(parents=True, exist_ok=True)
    (WORK / "test.nix").write_text(params["expression"])
    for source, name in (("/usr/bin/bash-static", "bash"), ("/usr/bin/busybox", "busybox")):
        copy(source, tools / name)
    return [
        *("--file", str(WORK / "test.nix")),
        *("--argstr", "nonce", params["nonce"]),
        *("--argstr", "tools", str(WORK / "tools")),
    ]


def own_roots() -> Path:
    return ROOTS / OWNER / CONTAINER


def build(params: dict[str, Any]) -> dict[str, Any]:
    """Step 9a: kept (linked under the owner's roots) and scratch (linked from ~/result)."""
    installable = prepare(params)
    own = own_roots()
    found: dict[str, Any] = {
        "NIX_REMOTE": os.environ.get("NIX_REMOTE"),
        "roots": str(own),
        "roots writable": os.access(own, os.W_OK),
        "~/.nix-profile": link(HOME / ".nix-profile"),
    }
    kept = command(
        ["nix", "build", *installable, "kept", "--out-link", str(own / "kept"), "--print-out-paths"]
    )
    found["kept build"] = kept
    found["kept"] = path = kept["stdout"].strip()
    if kept["exit"] == 0:
        found["kept run"] = command([f"{path}/bin/devbox-test-kept"])
        found["kept info"] = path_info(path)
    scratch = command(["nix", "build", *installable, "scratch", "--print-out-paths"], cwd=HOME)
    found["scratch build"] = scratch
    found["scratch"] = scratch["stdout"].strip()
    found["~/result"] = link(HOME / "result")
    return found


def rebuild(params: dict[str, Any]) -> dict[str, Any]:
    """Step 9b: the same expression again, by another owner: valid before, not built again."""
    installable = prepare(params)
    kept = params["kept"]
    found: dict[str, Any] = {"before": path_info(kept)}
    found["build"] = command(
        [
            *("nix", "build", *installable, "kept"),
            *("--out-link", str(own_roots() / "kept"), "--print-out-paths"),
        ]
    )
    found["after"] = path_info(kept)
    found["run"] = command([f"{kept}/bin/devbox-test-kept"])
    return found


# A project with a flake and direnv's `.envrc` (docs/nix-in-containers.md): its development shell
# is the `devenv` derivation of nix-steps.nix, written out (a flake cannot take --argstr), with
# the static bash copied into the project (a flake may not read paths outside itself).
FLAKE = """{
  outputs = { self }: {
    devShells.x86_64-linux.default = derivation {
      name = "devbox-test-direnv";
      system = "x86_64-linux";
      builder = "${self}/tools/bin/bash";
      args = [ "-c" "echo $DEVBOX_TEST_MARKER >$out" ];
      # nix print-dev-env's builder writes the environment to each of $outputs.
      outputs = [ "out" ];
      DEVBOX_TEST_MARKER = "direnv-NONCE";
    };
  };
}
"""


def use_flake(nonce: str) -> dict[str, Any]:
    """direnv's `use flake` in a project, as a developer's shell enters it: allow, then exec."""
    project = WORK / "project"
    (project / "tools" / "bin").mkdir(parents=True, exist_ok=True)
    copy("/usr/bin/bash-static", project / "tools" / "bin" / "bash")
    (project / "flake.nix").write_text(FLAKE.replace("NONCE", nonce))
    (project / ".envrc").write_text("use flake\n")
    allowed = command(["direnv", "allow", str(project)])
    if allowed["exit"] != 0:
        return allowed
    return command(
        ["direnv", "exec", str(project), "bash", "-c", 'echo "$DEVBOX_TEST_MARKER"'], cwd=project
    )


def tools(params: dict[str, Any]) -> dict[str, Any]:
    """Step 9c: nix shell, nix develop and nix profile install with the same expression."""
    installable = prepare(params)
    found: dict[str, Any] = {
        "shell": command(["nix", "shell", *installable, "kept", "--command", "devbox-test-kept"]),
        # Its outputs go to ./outputs; nixpkgs#bashInteractive cannot be had (no registry, and
        # --argstr rules out flakes), so its shell is the image's bash.
        "develop": command(
            [
                *("nix", "develop", *installable, "devenv", "--command"),
                *("bash", "-c", 'echo "$DEVBOX_TEST_MARKER"'),
            ],
            cwd=WORK,
        ),
        "profile install": command(["nix", "profile", "install", *installable, "kept"]),
        "direnv": use_flake(params["nonce"]),
    }
    profile = HOME / ".nix-profile"
    found["~/.nix-profile"] = link(profile)
    found["profile"] = os.path.realpath(profile)
    found["profile run"] = command([str(profile / "bin" / "devbox-test-kept")])
    own = own_roots()
    found["roots"] = {entry.name: link(entry) for entry in sorted(own.iterdir())}
    return found


def attack(params: dict[str, Any]) -> dict[str, Any]:
    """Step 9d: what the daemon trusts the client with, what a build sees, what the user may
    write outside the home."""
    installable = prepare(params)
    kept, other = params["kept"], params["other"]
    found: dict[str, Any] = {"store info": command(["nix", "store", "info", "--json"])}
    probe = command(
        [
            *("nix", "build", *installable, "probe", "--print-out-paths", "--no-link"),
            *("--option", "sandbox", "false", "--option", "build-users-group", ""),
        ]
    )
    found["probe build"] = probe
    if probe["exit"] == 0:
        found["probe"] = Path(probe["stdout"].strip()).read_text()
    # Another owner's roots are not mounted here; on the host they are that owner's.
    theirs = ROOTS / other
    found["writes"] = {
        "a file in /nix/store": attempt(
            lambda: Path(f"/nix/store/devbox-test-from-{OWNER}").write_text("x")
        ),
        f"a link in {theirs}": attempt(
            lambda: (
                theirs.mkdir(parents=True, exist_ok=True),
                (theirs / f"devbox-test-from-{OWNER}").symlink_to(kept),
            )
        ),
        "a link in /nix/var/nix/gcroots": attempt(
            lambda: Path(f"/nix/var/nix/gcroots/devbox-test-from-{OWNER}").symlink_to(kept)
        ),
        "a file in the daemon's socket directory": attempt(
            lambda: Path(f"/nix/var/nix/daemon-socket/devbox-test-from-{OWNER}").write_text("x")
        ),
        "a look at the daemon's database": attempt(lambda: list(Path("/nix/var/nix/db").iterdir())),
    }
    found["owners' roots seen"] = sorted(entry.name for entry in ROOTS.iterdir())
    return found


def main() -> None:
    params = json.loads(sys.argv[1])
    action = {"build": build, "rebuild": rebuild, "tools": tools, "attack": attack}
    print(json.dumps(action[params["action"]](params)))


if __name__ == "__main__":
    main()
