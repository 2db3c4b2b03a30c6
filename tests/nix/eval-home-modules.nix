# Evaluates home/modules with nixpkgs' lib and the Home Manager option stubs beside this file,
# and returns what they define and declare as plain JSON data. Packages are stand-ins named
# after the nixpkgs attribute, so the result lists attribute names. Used by
# test_home_modules.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-home-modules.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib' --arg module '"devcontainer"' \
#     --arg config '{ devbox.git.userName = "Ada"; }'
{
  lib,
  module,
  config ? { },
}:
let
  packageNames = import ./home-package-names.nix;
  stubPackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  pkgs = lib.genAttrs packageNames stubPackage;

  evaluated = lib.evalModules {
    specialArgs = { inherit pkgs; };
    modules = [
      ./home-manager-option-stubs.nix
      ../../home/modules/${module}.nix
      config
    ];
  };
  cfg = evaluated.config;
  names = map (p: p.name);

  # An option's declaration as data: what the house style asks of every option.
  describe = option: {
    type = option.type.description;
    hasDescription = (option.description or null) != null && option.description != "";
    hasDefault = option ? default;
    hasExample = option ? example;
  };
  devboxOptions = lib.collect lib.isOption evaluated.options.devbox;
in
{
  packages = names cfg.devbox.packages;
  homePackages = names cfg.home.packages;
  inherit (cfg.home) sessionVariables;
  git = {
    inherit (cfg.programs.git) enable ignores settings;
    package = if cfg.programs.git.package == null then null else cfg.programs.git.package.name;
    lfs = {
      inherit (cfg.programs.git.lfs) enable;
      package = if cfg.programs.git.lfs.package == null then null else cfg.programs.git.lfs.package.name;
    };
  };
  options = lib.listToAttrs (
    map (option: lib.nameValuePair (lib.showOption option.loc) (describe option)) devboxOptions
  );
}
