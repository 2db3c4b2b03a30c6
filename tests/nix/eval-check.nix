# Evaluates what the flake's Python check (checks.x86_64-linux.pytest-nix, the devbox-ctl
# package) is made of, with nixpkgs' lib and stub-pkgs.nix as nixpkgs: the files its source set
# selects (lib.fileset, so Nix >= 2.14), the attributes of its check inputs and dependencies,
# its environment and its check phase. lib.fileset.toSource would copy the files into the
# store; here it returns what it was given, and lib.fileset.toList lists the same files.
# Used by test_check_replay.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-check.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib'
{ lib }:
let
  flake = import ../../flake.nix;
  fakeStore = "/nix/store/00000000000000000000000000000000";
  libForFlake = lib // {
    fileset = lib.fileset // {
      toSource =
        arguments:
        arguments
        // {
          name = "source";
          outPath = "${fakeStore}-source";
        };
    };
  };
  nixpkgs = {
    lib = libForFlake;
    outPath = "${fakeStore}-nixpkgs";
    legacyPackages = lib.genAttrs lib.systems.flakeExposed (
      system: import ./stub-pkgs.nix { inherit lib system; }
    );
  };
  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs;
    home-manager.outPath = "${fakeStore}-home-manager";
  };
  package = outputs.packages.x86_64-linux.devbox-ctl;
  inherit (package) arguments;
  root = toString arguments.src.root;
  attributes = map (input: input.attribute);
in
{
  # Forces every input, as instantiating the derivation would.
  built = toString package;
  checkIsThePackage = outputs.checks.x86_64-linux.pytest-nix.outPath == package.outPath;
  files = map (file: lib.removePrefix "${root}/" (toString file)) (
    lib.fileset.toList arguments.src.fileset
  );
  inherit (arguments) sourceRoot checkPhase env;
  sourceName = arguments.src.name;
  nixpkgs = nixpkgs.outPath;
  quadlet = "${nixpkgs.legacyPackages.x86_64-linux.podman}/libexec/podman/quadlet";
  nativeCheckInputs = attributes arguments.nativeCheckInputs;
  dependencies = attributes arguments.dependencies;
  sitePackages = nixpkgs.legacyPackages.x86_64-linux.python3.sitePackages;
}
