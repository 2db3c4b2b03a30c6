"""The flake's NixOS VM test evaluates as runNixOSTest evaluates it.

No NixOS VM can run here, so eval-vm-test.nix evaluates checks.x86_64-linux.orchestrator-vm
short of building it: its nodes as NixOS configurations whose pkgs is the flake's own,
read-only package set (stub-pkgs.nix: packages with nixpkgs' meta, refusing unfree ones as
nixpkgs does by default), everything a build of each node's system and of each specialisation
would force, and the test script with the nodes. A node that would not evaluate under
`nix flake check` (an unfree package, a failed assertion, a nixpkgs.* setting) fails here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from nix_eval import evaluate, instantiate

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "tests" / "nix" / "eval-vm-test.nix"
OP_STAND_IN = REPO / "tests" / "nixos" / "stand-ins" / "op.sh"
SCRIPT = REPO / "tests" / "nixos" / "orchestrator_script.py"


def test_the_vm_test_evaluates_with_its_nodes_and_script() -> None:
    test = evaluate(EVAL)
    assert test["name"] == "devbox-orchestrator"
    assert list(test["nodes"]) == ["machine"]
    assert test["nodes"]["machine"].endswith("-nixos-system")
    # The free stand-in for op, not the unfree 1Password CLI.
    assert test["opPackage"] == {"machine": "op"}
    # The script file, after the line naming the machine's system (ruff checks the file with
    # the suite; compile() checks the whole script as the driver runs it).
    script = test["testScript"]
    first, rest = script.split("\n", 1)
    assert first == f'TOPLEVEL = "{test["nodes"]["machine"]}"'
    assert rest == SCRIPT.read_text()
    compile(script, "testScript", "exec")


def test_the_unfree_1password_cli_is_refused_as_nixpkgs_refuses_it() -> None:
    # What the module's default would give the node: runNixOSTest's pkgs refuses it.
    result = instantiate(
        EVAL,
        extraNodeModule="{ pkgs, lib, ... }: { services.devbox.opPackage = lib.mkForce pkgs._1password-cli; }",
    )
    assert result.returncode != 0
    assert "has an unfree license (‘unfree’), refusing to evaluate" in result.stderr


def test_a_node_cannot_configure_nixpkgs() -> None:
    # runNixOSTest makes nixpkgs.* read-only for its nodes (node.pkgsReadOnly).
    result = instantiate(EVAL, extraNodeModule="{ nixpkgs.config.allowUnfree = true; }")
    assert result.returncode != 0
    assert "nixpkgs" in result.stderr


def test_a_failed_assertion_fails_the_node() -> None:
    result = instantiate(
        EVAL, extraNodeModule='{ lib, ... }: { services.devbox.stateDir = lib.mkForce "relative"; }'
    )
    assert result.returncode != 0
    assert "services.devbox.stateDir must be an absolute path" in result.stderr


def test_the_op_stand_in_fails_as_op_does_without_an_account() -> None:
    result = subprocess.run(
        ["bash", str(OP_STAND_IN), "read", "op://DevBox/x/credential"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("[ERROR] ")
