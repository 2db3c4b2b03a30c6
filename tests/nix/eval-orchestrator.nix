# Evaluates nixos/orchestrator.nix with the nixpkgs library and the option stubs beside this
# file, and returns what the module defines as plain JSON data (paths as strings, nothing copied
# into the store). Used by test_orchestrator_module.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-orchestrator.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib' --arg generatedDir /abs/generated \
#     --arg extraConfig '{ services.devbox.restartOnImageChange = true; }'
{
  lib,
  generatedDir,
  extraConfig ? { },
}:
let
  inherit (lib) mapAttrs;

  stubPackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };

  # A real host allows the unfree 1Password CLI, as services.devbox.opPackage says.
  pkgs = import ./stub-pkgs.nix {
    inherit lib;
    config.allowUnfreePredicate = package: package.pname == "1password-cli";
  };

  evaluated = lib.evalModules {
    modules = [
      { _module.args.pkgs = pkgs; }
      ./nixos-option-stubs.nix
      ../../nixos/orchestrator.nix
      {
        services.devbox = {
          enable = true;
          inherit generatedDir;
          package = stubPackage "devbox";
          # The devbox image names the store paths the host must keep (containers/devcontainer).
          image = stubPackage "devcontainer.tar.gz" // {
            storeContents = [ (stubPackage "tini") ];
            hostStoreImage = stubPackage "devcontainer-host-store.tar.gz";
          };
        };
      }
      extraConfig
    ];
  };
  inherit (evaluated) config;

  service = unit: {
    inherit (unit)
      description
      wantedBy
      wants
      requires
      after
      restartTriggers
      restartIfChanged
      overrideStrategy
      environment
      serviceConfig
      ;
    path = map toString unit.path;
  };
in
{
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;
  etc = mapAttrs (_: file: {
    source = if file.source == null then null else toString file.source;
    inherit (file) text mode;
  }) config.environment.etc;
  users = mapAttrs (_: user: {
    inherit (user)
      isNormalUser
      uid
      home
      linger
      autoSubUidGidRange
      subUidRanges
      subGidRanges
      ;
  }) config.users.users;
  podman = config.virtualisation.podman.enable;
  systemPackages = map toString config.environment.systemPackages;
  services = mapAttrs (_: service) config.systemd.services;
  timers = mapAttrs (_: timer: {
    inherit (timer) wantedBy overrideStrategy timerConfig;
  }) config.systemd.timers;
  packages = map (package: {
    inherit (package) name;
    entries = map (entry: {
      inherit (entry) name;
      path = toString entry.path;
    }) (package.entries or [ ]);
  }) config.systemd.packages;
  tmpfiles = config.systemd.tmpfiles.rules;
  nixSettings = config.nix.settings;
  nixGc = config.nix.gc;
  slices = config.systemd.slices;
  extraDependencies = map toString config.system.extraDependencies;
  sudo = config.security.sudo.extraRules;
  sudoConfig = config.security.sudo.extraConfig;
  sudoRs = config.security.sudo-rs.extraRules;
  sudoRsConfig = config.security.sudo-rs.extraConfig;
}
