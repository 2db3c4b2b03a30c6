# What Home Manager does with the options the image reads (containers/devcontainer/toolkit.nix),
# reduced to that, as in home-manager release-26.05 at the pin (docs/nix-checked.md):
#
#   home.username, homeDirectory, stateVersion   modules/home-environment.nix, misc/version.nix
#   xdg.configFile.<name>.text / .source         modules/misc/xdg.nix, lib/file-type.nix: a
#                                                text becomes a source file in the store
#   programs.git → xdg.configFile."git/config"   modules/programs/git.nix: the settings as INI
#   programs.git.ignores → "git/ignore"          modules/programs/git.nix: one pattern a line,
#                                                only when the list is not empty
#   i18n.glibcLocales → home.sessionVariables    modules/config/i18n.nix: on Linux,
#     .LOCALE_ARCHIVE_2_27                       "${glibcLocales}/lib/locale/locale-archive"
#                                                for glibc >= 2.27; default pkgs.glibcLocales
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.programs.git;
  textFile = name: text: {
    type = "derivation";
    name = "hm_${name}";
    outPath = "/nix/store/00000000000000000000000000000000-hm_${name}";
    inherit text;
  };
in
{
  options = {
    home.username = mkOption { type = types.str; };
    home.homeDirectory = mkOption { type = types.str; };
    home.stateVersion = mkOption { type = types.str; };
    xdg.configFile = mkOption {
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          {
            options = {
              text = mkOption {
                type = types.nullOr types.lines;
                default = null;
              };
              source = mkOption { type = types.unspecified; };
            };
            config.source = lib.mkIf (config.text != null) (textFile (baseNameOf name) config.text);
          }
        )
      );
      default = { };
    };
    i18n.glibcLocales = mkOption {
      type = types.path;
      default = pkgs.glibcLocales;
    };
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable {
      xdg.configFile."git/config".text = lib.generators.toGitINI cfg.settings;
      xdg.configFile."git/ignore" = lib.mkIf (cfg.ignores != [ ]) {
        text = lib.concatMapStrings (pattern: pattern + "\n") cfg.ignores;
      };
    })
    (lib.mkIf pkgs.stdenv.hostPlatform.isLinux {
      home.sessionVariables.LOCALE_ARCHIVE_2_27 =
        "${config.i18n.glibcLocales}/lib/locale/locale-archive";
    })
  ];
}
