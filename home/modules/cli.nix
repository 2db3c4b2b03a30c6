# The command-line toolkit every devbox user gets: on NixOS, on macOS and in
# the dev container. Enabled by `devbox.cli.enable`.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkEnableOption mkIf mkOption types;
  cfg = config.devbox.cli;
in
{
  imports = [ ./packages.nix ];

  options.devbox.cli = {
    enable = mkEnableOption "the devbox command-line toolkit (ripgrep, fd, bat, eza, fzf, jq, zellij, neovim, …)";

    extraPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
      example = lib.literalExpression "[ pkgs.httpie ]";
      description = "More command-line packages to install with the toolkit, here and in the dev-container image.";
    };

    editor = mkOption {
      type = types.nullOr types.str;
      default = "nvim";
      example = "hx";
      description = ''
        Command put in {env}`EDITOR` and {env}`VISUAL`, or `null` to leave
        both alone. The default is the toolkit's neovim.
      '';
    };
  };

  config = mkIf cfg.enable {
    devbox.packages = [
      pkgs.bat
      pkgs.curl
      pkgs.eza
      pkgs.fd
      pkgs.file
      pkgs.fzf
      pkgs.htop
      pkgs.jq
      pkgs.less
      pkgs.ncdu
      pkgs.neovim
      pkgs.ripgrep
      pkgs.rsync
      pkgs.tree
      pkgs.unzip
      pkgs.wget
      pkgs.yq-go
      pkgs.zellij
      pkgs.zip
    ]
    ++ cfg.extraPackages;

    home.sessionVariables = mkIf (cfg.editor != null) {
      EDITOR = cfg.editor;
      VISUAL = cfg.editor;
    };
  };
}
