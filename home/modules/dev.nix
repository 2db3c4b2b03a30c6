# Development tools beyond the basic CLI: build runners, linters and the Nix
# tooling this project itself uses. Enabled by `devbox.dev.enable`.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkEnableOption mkIf mkOption types;
  cfg = config.devbox.dev;
in
{
  imports = [ ./packages.nix ];

  options.devbox.dev = {
    enable = mkEnableOption "the devbox development tools (make, just, direnv, shellcheck, nixfmt, nil, python, node)";

    extraPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
      example = lib.literalExpression "[ pkgs.go pkgs.rustup ]";
      description = "More development packages to install, here and in the dev-container image.";
    };
  };

  config = mkIf cfg.enable {
    devbox.packages = [
      pkgs.direnv
      pkgs.gnumake
      pkgs.just
      pkgs.nil
      pkgs.nix-direnv
      pkgs.nixfmt
      pkgs.nodejs
      pkgs.python3
      pkgs.shellcheck
    ]
    ++ cfg.extraPackages;
  };
}
