# Evaluates nixos/scripts/default.nix with stand-in packages and returns, for each program it
# makes, what writeShellApplication would be given: its name, the script text and the
# nixpkgs attributes of its runtimeInputs. Used by tests/nixos_scripts/:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-scripts.nix
let
  # Stands for a nixpkgs package; only its attribute name is read.
  stubPackage = attribute: {
    type = "derivation";
    name = attribute;
    inherit attribute;
    outPath = "/nix/store/00000000000000000000000000000000-${attribute}";
  };
  # Returns its arguments: what the module's scripts declare, unbuilt.
  writeShellApplication = arguments: arguments;
  programs = import ../../nixos/scripts {
    inherit writeShellApplication;
    coreutils = stubPackage "coreutils";
    podman = stubPackage "podman";
  };
in
builtins.mapAttrs (_: program: {
  inherit (program) name text;
  runtimeInputs = map (package: package.attribute) program.runtimeInputs;
}) programs
