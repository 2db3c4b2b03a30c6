# Evaluates containers/devcontainer/toolkit.nix (what the image takes from the Home Manager
# modules) with nixpkgs' lib, a stand-in for home-manager's homeManagerConfiguration (the
# option and behaviour stubs beside this file) and stand-in packages. Used by
# tests/nix/test_toolkit.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-toolkit.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib'
{ lib }:
let
  stubPackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  # glibcLocales: all locales unless overridden, as pkgs/development/libraries/glibc/locales.nix.
  glibcLocales = stubPackage "glibc-locales-all" // {
    version = "2.40";
    override =
      arguments:
      stubPackage "glibc-locales-${lib.concatMapStringsSep "-" (lib.replaceStrings [ "/" ] [ "_" ]) arguments.locales}"
      // {
        version = "2.40";
      };
  };
  pkgs = lib.genAttrs (import ./home-package-names.nix) stubPackage // {
    inherit glibcLocales;
    stdenv.hostPlatform.isLinux = true;
  };
  home-manager.lib.homeManagerConfiguration =
    { pkgs, modules }:
    lib.evalModules {
      specialArgs = { inherit pkgs; };
      modules = modules ++ [
        ./home-manager-option-stubs.nix
        ./home-manager-behaviour-stubs.nix
      ];
    };
  toolkit = import ../../containers/devcontainer/toolkit.nix {
    inherit home-manager pkgs;
    profile = ../../home/modules/devcontainer.nix;
  };
in
{
  packages = map (package: package.name) toolkit.packages;
  inherit (toolkit) sessionVariables;
  gitConfig = toolkit.gitConfig.text;
  gitIgnore = toolkit.gitIgnore.text;
  imageLocales = "${import ../../containers/devcontainer/locales.nix { inherit glibcLocales; }}";
}
