# Evaluates the flake's NixOS VM test (checks.x86_64-linux.orchestrator-vm, from
# tests/nixos/orchestrator.nix) the way pkgs.testers.runNixOSTest does, short of building:
# the flake's outputs with nixpkgs' lib and stub-pkgs.nix as nixpkgs (its package sets refuse
# unfree packages, as nixpkgs.legacyPackages does), each node a NixOS configuration whose pkgs
# is that same, read-only package set (nixos/lib/testing/nodes.nix: node.pkgs = hostPkgs;
# nixpkgs.* options cannot be set: a node that sets one fails here, as the option is not
# declared), then the test script with the nodes. Returns what the build would need, as JSON.
# Used by test_vm_test.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-vm-test.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib'
{
  lib,
  # A module added to every node, for the tests that check what the evaluation refuses.
  extraNodeModule ? { },
}:
let
  inherit (import ./flake-with-stub-pkgs.nix { inherit lib; }) outputs nixpkgs;

  # runNixOSTest: stub-pkgs.nix returns the test's arguments.
  test = outputs.checks.x86_64-linux.orchestrator-vm;
  hostPkgs = nixpkgs.legacyPackages.x86_64-linux;

  node =
    module:
    lib.evalModules {
      modules = [
        ./nixos-option-stubs.nix
        ./nixos-test-node-stubs.nix
        { _module.args.pkgs = hostPkgs; }
        module
        extraNodeModule
      ];
    };
  nodes = lib.mapAttrs (_: node) test.nodes;
  nodeConfigs = lib.mapAttrs (_: evaluated: evaluated.config) nodes;
in
{
  inherit (test) name;
  nodes = lib.mapAttrs (_: config: toString config.system.build.toplevel) nodeConfigs;
  testScript = test.testScript { nodes = nodeConfigs; };
  opPackage = lib.mapAttrs (_: config: config.services.devbox.opPackage.name) nodeConfigs;
}
