# The one package list of the devbox Home Manager modules.
#
# cli.nix, dev.nix and git.nix append to `devbox.packages` instead of writing
# `home.packages` themselves. On a workstation this module installs the list
# through `home.packages`; the dev-container image evaluates the same modules
# with home-manager's lib and installs `config.devbox.packages` (see
# containers/devcontainer/toolkit.nix). The image cannot simply take
# `home.packages`: that list also holds whatever unrelated Home Manager modules
# add, and the image wants exactly the toolkit these modules declare.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.devbox.packages = mkOption {
    type = types.listOf types.package;
    default = [ ];
    example = lib.literalExpression "[ pkgs.ripgrep pkgs.jq ]";
    description = ''
      The packages the devbox modules (cli, dev, git) install. They are
      collected here so that the dev-container image installs exactly the same
      list as the workstations; on a workstation they end up in
      {option}`home.packages`. Set the `extraPackages` option of a module to
      add to it.
    '';
  };

  config.home.packages = config.devbox.packages;
}
