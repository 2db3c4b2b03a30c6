# What a NixOS test node has beyond nixos-option-stubs.nix, as declarations only: the options
# the VM test sets (virtualisation.memorySize from qemu-vm.nix, specialisation from
# specialisation.nix) and a stand-in for system.build.toplevel that forces what building the
# system would: every failed assertion, every unit, /etc file, package and sudo rule (so a
# package that refuses to evaluate, such as an unfree one, fails here), and the toplevel of
# each specialisation. docs/nix-checked.md says where each was read.
{
  config,
  lib,
  extendModules,
  ...
}:
let
  inherit (lib) mkOption types;
  fakeStore = "/nix/store/00000000000000000000000000000000";

  failed = map (assertion: assertion.message) (
    builtins.filter (assertion: !assertion.assertion) config.assertions
  );

  # What the system's derivation is made of, as JSON: toJSON gives every package's outPath.
  system = {
    etc = lib.mapAttrs (_: file: {
      source = if file.source == null then null else toString file.source;
      inherit (file) text;
    }) config.environment.etc;
    services = lib.mapAttrs (_: unit: {
      inherit (unit) environment serviceConfig restartTriggers;
      path = map toString unit.path;
    }) config.systemd.services;
    inherit (config.environment) systemPackages;
    inherit (config.systemd) packages;
    sudo = config.security.sudo.extraRules;
    sudoRs = config.security.sudo-rs.extraRules;
    inherit (config.users) users;
    specialisations = lib.mapAttrs (
      _: specialisation:
      toString
        (extendModules {
          modules = [
            specialisation.configuration
            { specialisation = lib.mkForce { }; }
          ];
        }).config.system.build.toplevel
    ) config.specialisation;
  };
in
{
  options = {
    virtualisation.memorySize = mkOption {
      type = types.ints.positive;
      default = 1024;
    };
    specialisation = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            configuration = mkOption {
              type = types.deferredModule;
              default = { };
            };
            inheritParentConfig = mkOption {
              type = types.bool;
              default = true;
            };
          };
        }
      );
      default = { };
    };
  };

  config.system.build.toplevel = {
    type = "derivation";
    name = "nixos-system";
    outPath =
      if failed != [ ] then
        throw "Failed assertions:\n${lib.concatMapStringsSep "\n" (message: "- ${message}") failed}"
      else
        builtins.seq (builtins.toJSON system) "${fakeStore}-nixos-system";
  };
}
