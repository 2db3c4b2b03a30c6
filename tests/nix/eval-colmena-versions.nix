# The flake layouts docs/fleet.md gives for colmena, read by each colmena version as
# colmena-flake.nix says that version reads a flake. For each layout and version: the hive's
# host names, or colmena's error. Used by test_fleet_module.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-colmena-versions.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib' --arg generatedDir /abs/generated
{ lib, generatedDir }:
let
  inherit (import ./flake-outputs.nix { inherit lib; }) outputs stubPkgs;
  colmena = import ./colmena-flake.nix { };
  hive = outputs.lib.fleetHive {
    meta.nixpkgs = stubPkgs "x86_64-linux";
    inherit generatedDir;
  };
  hosts = raw: builtins.filter (name: !(builtins.elem name [ "meta" "defaults" "network" ])) (builtins.attrNames raw);
  # The layouts, as a user's flake outputs would be (docs/fleet.md, "Which colmena").
  layouts = {
    # The default: nixpkgs' colmena 0.4.0 reads the raw hive.
    colmena = {
      colmena = hive;
    };
    # For both versions: colmena 0.5's evaluated hive where only 0.5 looks for it.
    withLegacyPackages = {
      colmena = hive;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: {
        colmenaHive = colmena.makeHive."0.5" hive;
      });
    };
    # What the docs once said: a top-level colmenaHive made by colmena 0.5.
    topLevelColmenaHive = {
      colmena = hive;
      colmenaHive = colmena.makeHive."0.5" hive;
    };
  };
  result =
    read: layout:
    let
      answer = read layout;
    in
    if answer ? hive then { hosts = hosts answer.hive; } else { inherit (answer) error; };
in
lib.mapAttrs (_: layout: lib.mapAttrs (_: read: result read layout) colmena.read) layouts
