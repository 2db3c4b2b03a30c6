# Evaluates the flake's lib.fleetHive for a generated fleet tree, and each of its nodes as colmena
# would, with the nixpkgs library alone; returns plain JSON data. Used by test_fleet_module.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-fleet-hive.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib' --arg generatedDir /abs/generated \
#     --arg hosts '{ alpha = { services.devbox.fleet.control = true; }; }' \
#     --arg defaults '{ }' --arg plainHosts '{ }'
#
# colmena itself is not run here. Its node evaluation (src/nix/hive/eval.nix of colmena v0.4.0,
# the version nixpkgs packages) is eval-config.nix over its own modules, `hive.defaults` and the
# node's modules, with specialArgs `name` and `nodes`. This file does the same with
# lib.evalModules, nixos-option-stubs.nix in place of NixOS, and colmena's `deployment` options
# as colmena v0.4.0 declares them (src/nix/hive/options.nix; the ones the hive sets).
{
  lib,
  generatedDir,
  hosts ? { },
  defaults ? { },
  # The hosts' modules for fleetModules (they may not name colmena's options).
  plainHosts ? { },
}:
let
  inherit (import ./flake-outputs.nix { inherit lib; }) outputs stubPkgs;

  stubPackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };

  pkgs = import ./stub-pkgs.nix {
    inherit lib;
    config.allowUnfreePredicate = package: package.pname == "1password-cli";
  };

  meta = {
    nixpkgs = stubPkgs "x86_64-linux";
    description = "devbox test fleet";
  };

  hive = outputs.lib.fleetHive {
    inherit
      meta
      generatedDir
      hosts
      defaults
      ;
  };

  # colmena v0.4.0 src/nix/hive/options.nix, deploymentOptions: the options the hive sets.
  deploymentOptions =
    { name, ... }:
    {
      options.deployment = {
        targetHost = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = name;
        };
        targetUser = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = "root";
        };
      };
    };

  # colmena v0.4.0 eval.nix `reservedNames` and `configsFor`.
  nodeNames = builtins.filter (
    name:
    !(builtins.elem name [
      "defaults"
      "network"
      "meta"
    ])
  ) (builtins.attrNames hive);
  configsFor = name: if builtins.isList hive.${name} then hive.${name} else [ hive.${name} ];

  evalNode =
    name:
    (lib.evalModules {
      specialArgs = {
        inherit name;
        nodes = { };
      };
      modules = [
        { _module.args.pkgs = pkgs; }
        ./nixos-option-stubs.nix
        deploymentOptions
        hive.defaults
        # The flake's wrapper gives the flake's own devbox-ctl and image (mkDefault); the stand-in
        # package sets build neither, so the test names stand-ins.
        {
          services.devbox = {
            package = stubPackage "devbox";
            inherit image;
          };
        }
      ]
      ++ configsFor name;
    }).config;

  # The flake's image names the store paths a host keeps for it (containers/devcontainer).
  image = stubPackage "devcontainer.tar.gz" // {
    storeContents = [ (stubPackage "tini") ];
  };

  # fleetModules as nixosSystem would take them: NixOS's options only (no colmena `deployment`),
  # so a definition of an option NixOS does not declare fails the evaluation.
  plainModules = outputs.lib.fleetModules {
    inherit generatedDir;
    hosts = plainHosts;
  };
  plainNode =
    name:
    let
      config =
        (lib.evalModules {
          modules = [
            { _module.args.pkgs = pkgs; }
            ./nixos-option-stubs.nix
            {
              services.devbox = {
                package = stubPackage "devbox";
                inherit image;
              };
            }
          ]
          ++ plainModules.${name};
        }).config;
    in
    {
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
      inherit (config.services.devbox) hostName;
      manifest = toString config.environment.etc."devbox/manifest.json".source;
      role = (builtins.fromJSON config.environment.etc."devbox/config.json".text).role;
    };

  node =
    name:
    let
      config = evalNode name;
    in
    {
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
      inherit (config.services.devbox) hostName enable;
      generatedDir = toString config.services.devbox.generatedDir;
      deployment = config.deployment;
      etc = lib.mapAttrs (_: file: {
        source = if file.source == null then null else toString file.source;
        inherit (file) text;
      }) config.environment.etc;
      users = builtins.attrNames config.users.users;
    };
in
{
  names = builtins.attrNames hive;
  meta = {
    inherit (hive.meta) description;
    nixpkgsSystem = hive.meta.nixpkgs.stdenv.hostPlatform.system;
  };
  nodes = lib.genAttrs nodeNames node;
  modules = lib.mapAttrs (_: modules: builtins.length modules) (
    lib.filterAttrs (name: _: builtins.elem name nodeNames) hive
  );
  plain = lib.mapAttrs (name: _: plainNode name) plainModules;
}
