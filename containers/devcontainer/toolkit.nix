# What the image takes from the Home Manager modules (home/modules): it
# evaluates the devcontainer profile with home-manager's own lib, as a
# workstation would, and reads the result. Nothing is activated: the image has
# no home-manager generation, its home is the volume.
#
#   packages          devbox.packages: the toolkit, the same list workstations install
#   gitConfig         the git configuration the git module writes (included by /etc/gitconfig)
#   gitIgnore         the git module's ignore list (core.excludesFile of /etc/gitconfig)
#   sessionVariables  home.sessionVariables (EDITOR, VISUAL, ...) for /etc/profile
{
  home-manager,
  pkgs,
  profile,
}:
let
  hm =
    (home-manager.lib.homeManagerConfiguration {
      inherit pkgs;
      modules = [
        profile
        {
          home = {
            username = "dev";
            homeDirectory = "/home/dev";
            stateVersion = "26.05";
          };
          # Home Manager's i18n module puts LOCALE_ARCHIVE_2_27 into the session variables,
          # which the image copies into /etc/profile: the image's two locales, not the full
          # glibcLocales (modules/config/i18n.nix).
          i18n.glibcLocales = import ./locales.nix { inherit (pkgs) glibcLocales; };
        }
      ];
    }).config;
  gitConfigFile = hm.xdg.configFile."git/config" or null;
  # Home Manager writes programs.git.ignores to git/ignore, git's default excludes file.
  gitIgnoreFile = hm.xdg.configFile."git/ignore" or null;
in
{
  inherit (hm.devbox) packages;
  gitConfig = if gitConfigFile == null then null else gitConfigFile.source;
  gitIgnore = if gitIgnoreFile == null then null else gitIgnoreFile.source;
  inherit (hm.home) sessionVariables;
}
