# The flake's outputs with nixpkgs' lib and stub-pkgs.nix as nixpkgs (its package sets refuse
# unfree packages, as nixpkgs.legacyPackages does), and that nixpkgs. Used by eval-check.nix,
# eval-double-import.nix, eval-formatted-source.nix and eval-vm-test.nix.
#
#   import ./flake-with-stub-pkgs.nix { inherit lib; }
{
  lib,
  # The tree whose flake.nix is evaluated (a copy of this repository, for a test).
  flakeDir ? ../..,
  # Packages to add to each system's stub package set.
  extraPkgs ? (_system: { }),
}:
let
  fakeStore = "/nix/store/00000000000000000000000000000000";
  nixpkgs = {
    inherit lib;
    outPath = "${fakeStore}-nixpkgs";
    legacyPackages = lib.genAttrs lib.systems.flakeExposed (
      system: import ./stub-pkgs.nix { inherit lib system; } // extraPkgs system
    );
  };
  outputs = (import (flakeDir + "/flake.nix")).outputs {
    self = outputs;
    inherit nixpkgs;
    home-manager.outPath = "${fakeStore}-home-manager";
  };
in
{
  inherit outputs nixpkgs;
}
