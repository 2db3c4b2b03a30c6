# The flake's outputs, from its outputs function called with nixpkgs' lib and stand-in inputs:
# package sets that hold only stdenv.hostPlatform and a callPackage that names what it was
# called with, so nothing is built and no package is evaluated. Used by eval-flake.nix and
# eval-fleet-hive.nix.
{ lib }:
let
  flake = import ../../flake.nix;

  stubPkgs = system: {
    stdenv.hostPlatform = {
      inherit system;
      isLinux = lib.hasSuffix "-linux" system;
    };
    # The image is the only callPackage of the flake; its arguments stay unevaluated.
    callPackage = path: _: {
      type = "derivation";
      name = "${baseNameOf path}-${system}";
      outPath = "/nix/store/00000000000000000000000000000000-${baseNameOf path}-${system}";
    };
  };
  nixpkgs = {
    inherit lib;
    outPath = "/nix/store/00000000000000000000000000000000-nixpkgs";
    legacyPackages = lib.genAttrs lib.systems.flakeExposed stubPkgs;
  };
  home-manager = {
    outPath = "/nix/store/00000000000000000000000000000000-home-manager";
  };
  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs home-manager;
  };
in
{
  inherit outputs stubPkgs;
}
