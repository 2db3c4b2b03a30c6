# Declarations of the Home Manager options that home/modules set, so that the modules can be
# evaluated with nixpkgs' lib alone (test_home_modules.py). Each stub has the type of the real
# option in home-manager release-26.05 at 3cd22efe6471dc7365c822bd9ad73a21e55f38fb (the pin):
#
#   home.packages                 modules/home-environment.nix   listOf package
#   home.sessionVariables         modules/home-environment.nix   lazyAttrsOf (oneOf [ str path int float ])
#   programs.git.enable           modules/programs/git.nix       mkEnableOption
#   programs.git.package          modules/programs/git.nix       mkPackageOption … { nullable = true; }
#   programs.git.ignores          modules/programs/git.nix       listOf str
#   programs.git.settings         modules/programs/git.nix       either gitIniType (listOf gitIniType)
#   programs.git.lfs.enable       modules/programs/git.nix       mkEnableOption
#   programs.git.lfs.package      modules/programs/git.nix       mkPackageOption … { nullable = true; }
#
# gitIniType is a nested attribute set of strings, booleans and integers; the stub keeps only
# the attribute-set alternative, which is what the git module of this repository sets.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  gitValue = types.oneOf [
    types.str
    types.bool
    types.int
  ];
  gitIniType = types.attrsOf (types.attrsOf (types.either gitValue (types.attrsOf gitValue)));
in
{
  options = {
    home.packages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    home.sessionVariables = mkOption {
      type = types.lazyAttrsOf (
        types.oneOf [
          types.str
          types.path
          types.int
          types.float
        ]
      );
      default = { };
    };
    programs.git = {
      enable = lib.mkEnableOption "Git";
      package = mkOption {
        type = types.nullOr types.package;
        default = null;
      };
      ignores = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      settings = mkOption {
        type = gitIniType;
        default = { };
      };
      lfs = {
        enable = lib.mkEnableOption "Git Large File Storage";
        package = mkOption {
          type = types.nullOr types.package;
          default = null;
        };
      };
    };
  };
}
