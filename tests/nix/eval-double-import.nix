# How many times the flake's orchestrator wrapper defines services.devbox.package when a
# host's configuration imports it more than once: directly and as nixosModules.default, or
# directly and through lib.fleetModules (which imports it for every host). The module
# system imports a module with a `key` once. Used by test_flake.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-double-import.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib'
{ lib }:
let
  # The flake with stub-pkgs.nix as nixpkgs: the wrapper's package and image evaluate.
  inherit (import ./flake-with-stub-pkgs.nix { inherit lib; }) outputs nixpkgs;
  pkgs = nixpkgs.legacyPackages.x86_64-linux;
  definitions =
    modules:
    let
      evaluated = lib.evalModules {
        modules = [
          { _module.args.pkgs = pkgs; }
          ./nixos-option-stubs.nix
        ]
        ++ modules;
      };
    in
    builtins.length evaluated.options.services.devbox.package.definitionsWithLocations;
  inherit (outputs.nixosModules) orchestrator default;
in
{
  once = definitions [ orchestrator ];
  withDefault = definitions [
    orchestrator
    default
  ];
  twice = definitions [
    orchestrator
    orchestrator
  ];
}
