# Git, the GitHub CLI and a sensible Git configuration. Enabled by
# `devbox.git.enable`.
#
# The configuration goes through Home Manager's own `programs.git` (so it
# merges with anything else a user sets there), but the git package itself is
# put in `devbox.packages` rather than left to `programs.git.package`: that
# keeps the toolkit list the image installs complete.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkEnableOption
    mkIf
    mkOption
    mkPackageOption
    types
    ;
  cfg = config.devbox.git;
in
{
  imports = [ ./packages.nix ];

  options.devbox.git = {
    enable = mkEnableOption "Git, the GitHub CLI and devbox's Git defaults";

    package = mkPackageOption pkgs "git" { example = "gitFull"; };

    userName = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "Ada Lovelace";
      description = ''
        `user.name` for commits, or `null` to leave it unset (in the dev
        container people set it in {file}`~/.gitconfig` on the volume).
      '';
    };

    userEmail = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "ada@example.com";
      description = "`user.email` for commits, or `null` to leave it unset.";
    };

    defaultBranch = mkOption {
      type = types.str;
      default = "main";
      example = "trunk";
      description = "`init.defaultBranch`: the branch name `git init` starts with.";
    };
  };

  config = mkIf cfg.enable {
    devbox.packages = [
      cfg.package
      pkgs.gh
      pkgs.git-lfs
    ];

    programs.git = {
      enable = true;
      # Installed through devbox.packages above (see the comment at the top);
      # with no package, the LFS filters call git-lfs from PATH.
      package = null;
      lfs = {
        enable = true;
        package = null;
      };
      ignores = [
        ".direnv/"
        ".envrc.local"
        "result"
        "result-*"
      ];
      settings = lib.mkMerge [
        {
          init.defaultBranch = cfg.defaultBranch;
          # Rebase local work on pull instead of creating merge commits nobody asked for.
          pull.rebase = true;
          # `git push` on a new branch creates the upstream branch of the same name.
          push.autoSetupRemote = true;
          fetch.prune = true;
          rebase.autoStash = true;
          # Remember conflict resolutions, so a rebased branch does not ask twice.
          rerere.enabled = true;
          diff.algorithm = "histogram";
          merge.conflictStyle = "zdiff3";
          # Let `gh` hand out GitHub credentials to git over HTTPS.
          credential."https://github.com".helper = "!gh auth git-credential";
          credential."https://gist.github.com".helper = "!gh auth git-credential";
        }
        (mkIf (cfg.userName != null) { user.name = cfg.userName; })
        (mkIf (cfg.userEmail != null) { user.email = cfg.userEmail; })
      ];
    };
  };
}
