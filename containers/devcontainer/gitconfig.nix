# The image's /etc/gitconfig: the git module's configuration, included as Home Manager wrote
# it, and the module's ignore list as core.excludesFile. On a workstation git finds that list
# at its default place, ~/.config/git/ignore, where Home Manager writes it; in the image the
# home is the volume, so the system configuration names the file. A ~/.gitconfig on the
# volume still wins over both. Tested with real git in tests/image/test_gitconfig.py.
{
  lib,
  gitConfig,
  gitIgnore,
}:
lib.generators.toGitINI (
  lib.optionalAttrs (gitConfig != null) { include.path = "${gitConfig}"; }
  // lib.optionalAttrs (gitIgnore != null) { core.excludesFile = "${gitIgnore}"; }
)
