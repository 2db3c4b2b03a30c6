# The devbox orchestrator: the generated tree (generated/manifest.json and the Quadlet units
# beside it) turned into users, rootless podman, unit files, the dev-container image in each
# owner's storage, and a restart of exactly the containers whose units changed.
#
# Everything about containers comes from the manifest (docs/manifest.md); this module only maps
# it onto NixOS options and holds no logic the generator already has.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    concatLists
    concatMap
    escapeShellArgs
    literalExpression
    mapAttrs'
    mapAttrsToList
    mkDefault
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    mkPackageOption
    nameValuePair
    optional
    optionals
    types
    ;

  cfg = config.services.devbox;
  inherit (cfg) manifest;

  devbox = import ./lib.nix { inherit lib; };
  inherit (devbox.fromManifest manifest)
    supported
    users
    userUnitFiles
    usersWithContainers
    ;
  inherit (devbox)
    isAbsolute
    isStorePath
    stringPathOption
    subGidRange
    subUidRange
    ;
  sudoRule = devbox.sudoRule users privilegedCommand;
  sudoDefaults = devbox.sudoDefaults privilegedCommand privilegedPath;
  userAssertions = devbox.userAssertions config.users.users;
  overlaps = devbox.overlaps users config.users.users;

  podman = config.virtualisation.podman.package;
  # The one command the sudo rule allows. The runtime verbs run git, nix-instantiate,
  # nixos-rebuild, op and systemd's systemctl/systemd-run (podman itself runs as the owner, in
  # the owner's systemd manager, by the path config.json's `podman` gives).
  privilegedInputs = [
    cfg.package
    cfg.opPackage
    config.nix.package
    config.system.build.nixos-rebuild
    config.systemd.package
    pkgs.git
  ];
  # devbox-privileged gives every program it runs this PATH (config.json's
  # privilegedEnvironment), never the caller's; the sudo rule's secure_path is the same.
  privilegedPath = lib.concatStringsSep ":" [
    (lib.makeBinPath privilegedInputs)
    "/run/wrappers/bin"
    "/run/current-system/sw/bin"
  ];
  privileged = pkgs.writeShellApplication {
    name = "devbox-privileged";
    runtimeInputs = privilegedInputs;
    text = ''exec ${cfg.package}/bin/devbox-privileged "$@"'';
  };
  privilegedCommand = "${privileged}/bin/devbox-privileged";
  manifestPath = "/etc/devbox/manifest.json";

  # The module's shell scripts (nixos/scripts/), as programs: loadImage loads the image into
  # the owner's storage and tags it with the name the units run.
  programs = import ./scripts {
    inherit (pkgs) writeShellApplication coreutils;
    inherit podman;
  };

  imageService = name: user: {
    description = "devbox: load the dev-container image into ${name}'s rootless storage";
    wantedBy = [ "multi-user.target" ];
    # Like virtualisation.oci-containers' rootless containers: a system unit that runs podman
    # as the owner, next to the owner's systemd manager (which provides /run/user/<uid> and the
    # session bus podman moves its pause process to). No mount sandboxing here: the rootless
    # pause process podman may start would keep this unit's mount namespace for every later
    # podman command of the owner.
    # https://github.com/NixOS/nixpkgs/blob/master/nixos/modules/virtualisation/oci-containers.nix
    requires = [ "user@${toString user.uid}.service" ];
    wants = [ "linger-users.service" ];
    after = [
      "linger-users.service"
      "user@${toString user.uid}.service"
    ];
    environment = {
      HOME = config.users.users.${name}.home;
      XDG_RUNTIME_DIR = "/run/user/${toString user.uid}";
    };
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      User = name;
      # The image's store path is in the command line: a new image changes this unit, and
      # nixos-rebuild switch restarts it; an unchanged one is skipped by the stamp.
      ExecStart = escapeShellArgs [
        "${programs.loadImage}/bin/devbox-load-image"
        "${cfg.image}"
        manifest.settings.image
      ];
      TimeoutStartSec = "15min";
    };
  };

  # nixos-rebuild switch re-executes each lingering user's systemd manager (which reruns
  # Quadlet) before it restarts changed system units, but it never restarts changed user units.
  # This oneshot is such a system unit: its restart trigger is the hash of the user's units, so
  # it runs exactly when one of them changed, and devbox-ctl apply restarts, starts or stops
  # exactly the containers whose units changed (docs/host-config.md). Its command line does not
  # name the manifest's store path, so another user's change does not touch this unit.
  applyService = name: user: {
    description = "devbox: restart, start and stop ${name}'s dev containers whose units changed";
    wantedBy = [ "multi-user.target" ];
    requires = [ "user@${toString user.uid}.service" ];
    wants = [ "linger-users.service" ] ++ optional (user.containers != [ ]) "devbox-image-${name}.service";
    after = [
      "linger-users.service"
      "user@${toString user.uid}.service"
    ]
    ++ optional (user.containers != [ ]) "devbox-image-${name}.service";
    restartTriggers = [ user.unitsSha256 ] ++ optional cfg.restartOnImageChange "${cfg.image}";
    path = [ podman ];
    # No mount sandboxing: apply acts through the user's systemd manager, and a podman it ran
    # directly must not pin a private mount namespace into the owner's rootless namespace.
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = escapeShellArgs (
        [
          "${cfg.package}/bin/devbox-ctl"
          "apply"
          "--manifest"
          manifestPath
          "--user"
          name
          "--state-dir"
          cfg.stateDir
        ]
        ++ optionals cfg.restartOnImageChange [
          "--image"
          "${cfg.image}"
          "--restart-on-image-change"
        ]
      );
      # apply records what it applied only after every action succeeded; a failed run (the
      # user's manager still starting, a container that cannot start yet) is retried in full.
      Restart = "on-failure";
      RestartSec = "30s";
    };
  };

in
{
  imports = [ ./orchestrator-cleanup.nix ];

  options.services.devbox = {
    enable = mkEnableOption "the devbox orchestrator: rootless dev containers from a generated tree";

    package = mkOption {
      type = types.package;
      description = ''
        The devbox package, providing {command}`devbox-ctl` (put on every user's PATH, run by the
        apply and cleanup units) and {command}`devbox-privileged` (the one command the sudo rule
        allows). The devbox flake's `nixosModules.orchestrator` sets it.
      '';
      example = literalExpression "inputs.devbox.packages.x86_64-linux.devbox-ctl";
    };

    opPackage = mkPackageOption pkgs "_1password-cli" {
      extraDescription = ''
        It provides the 1Password CLI ({command}`op`) that fetches each owner's Tailscale auth
        key with the service-account token. It is unfree in nixpkgs: allow it
        (`nixpkgs.config.allowUnfreePredicate`), or set another package providing {command}`op`.
      '';
    };

    image = mkOption {
      type = types.package;
      description = ''
        The dev-container image: an archive from `dockerTools.buildLayeredImage` (or the script of
        `dockerTools.streamLayeredImage`). It is loaded into each container owner's rootless
        storage and tagged with the name the units run (`containers.image` of users.nix). The
        devbox flake's `nixosModules.orchestrator` sets its own image.
      '';
      example = literalExpression "inputs.devbox.packages.x86_64-linux.devcontainer";
    };

    generatedDir = mkOption {
      type = types.path;
      description = ''
        The generated directory (`devbox-ctl generate`), as a Nix path: its `manifest.json` is read
        at evaluation and its unit files are installed under
        {file}`/etc/containers/systemd/users/<UID>/`.
      '';
      example = literalExpression "./devbox/generated";
    };

    manifest = mkOption {
      type = types.attrs;
      internal = true;
      readOnly = true;
      default = builtins.fromJSON (builtins.readFile (cfg.generatedDir + "/manifest.json"));
      defaultText = literalExpression ''builtins.fromJSON (builtins.readFile (generatedDir + "/manifest.json"))'';
      description = "The generated manifest (docs/manifest.md), read from {option}`services.devbox.generatedDir`.";
    };

    configRepo = stringPathOption {
      default = "/etc/nixos";
      example = "/srv/infra";
      description = ''
        The git repository on this host that holds users.nix, containers.json and the generated
        directory. {command}`devbox-ctl` edits and commits here (as root, through the privileged
        path) before it runs {option}`services.devbox.rebuildCommand`.
      '';
    };

    usersFile = stringPathOption {
      default = "devbox/users.nix";
      example = "hosts/orchestrator/users.nix";
      description = "users.nix, relative to {option}`services.devbox.configRepo`.";
    };

    containersFile = stringPathOption {
      default = "${dirOf cfg.usersFile}/containers.json";
      example = "hosts/orchestrator/containers.json";
      description = ''
        containers.json, relative to {option}`services.devbox.configRepo`. By default beside
        {option}`services.devbox.usersFile`, where devbox-ctl looks for it.
      '';
    };

    generatedDirInRepo = stringPathOption {
      default = "${dirOf cfg.usersFile}/generated";
      example = "hosts/orchestrator/generated";
      description = ''
        The generated directory, relative to {option}`services.devbox.configRepo`: the same
        directory as {option}`services.devbox.generatedDir`, seen from the repository that
        devbox-ctl edits. By default beside {option}`services.devbox.usersFile`.
      '';
    };

    rebuildCommand = mkOption {
      type = types.listOf types.str;
      # The configuration is named explicitly: without --flake (or -I nixos-config=…),
      # nixos-rebuild takes it from NIX_PATH, which is not devbox's to choose.
      default = [
        "nixos-rebuild"
        "switch"
        "--flake"
        cfg.configRepo
      ];
      defaultText = literalExpression ''
        [
          "nixos-rebuild"
          "switch"
          "--flake"
          config.services.devbox.configRepo
        ]
      '';
      example = [
        "nixos-rebuild"
        "switch"
        "--flake"
        "/etc/nixos#orchestrator"
      ];
      description = ''
        The command (argv) that applies the configuration after devbox-ctl committed a change.
        It must name the configuration itself (`--flake <repo>#<host>`, or
        `-I nixos-config=/absolute/path`): it runs with a fixed environment, without NIX_PATH.
      '';
    };

    opVault = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "DevBox";
      description = "The 1Password vault with the Tailscale auth keys; null: `containers.opVault` of users.nix.";
    };

    opTokenFile = stringPathOption {
      default = null;
      nullable = true;
      example = "/run/keys/devbox-op-token";
      description = ''
        A root-only file holding the 1Password service-account token
        (`OP_SERVICE_ACCOUNT_TOKEN`), as a string path: a Nix path would copy the token into the
        world-readable store. Provision it with agenix, sops-nix or by hand.
      '';
    };

    tailscaleApiKeyFile = stringPathOption {
      default = null;
      nullable = true;
      example = "/run/keys/devbox-tailscale-api-key";
      description = ''
        A root-only file holding a Tailscale API access token, used to remove a destroyed
        container's device (a string path, like {option}`services.devbox.opTokenFile`). Null:
        devbox-ctl says the device must be removed by hand.
      '';
    };

    tailnet = mkOption {
      type = types.str;
      default = "-";
      example = "example.com";
      description = "The tailnet name for the Tailscale API; `-` is the token's default tailnet.";
    };

    stateDir = stringPathOption {
      default = "/var/lib/devbox";
      example = "/srv/devbox";
      description = ''
        Root-owned state: the event log, the volume snapshots kept before a destroy, and what
        `devbox-ctl apply` last applied per user.
      '';
    };

    restartOnImageChange = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether a new {option}`services.devbox.image` restarts every running container. By
        default a new image is loaded at once and used from each container's next start, so a
        rebuild never interrupts work for an image update.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = supported;
        message = ''
          services.devbox.generatedDir: manifest.json has version ${builtins.toJSON (manifest.version or null)}, and this module reads version 1.
          Regenerate it with the devbox-ctl of the devbox input this host uses (`devbox-ctl generate`), or update that input.
        '';
      }
      {
        assertion = builtins.isPath cfg.generatedDir || isStorePath cfg.generatedDir;
        message = ''
          services.devbox.generatedDir is the string "${toString cfg.generatedDir}"; give it as a Nix path (e.g. ./devbox/generated) so that its files are copied into the store.
        '';
      }
      {
        assertion = isAbsolute cfg.stateDir;
        message = ''services.devbox.stateDir must be an absolute path, e.g. "/var/lib/devbox".'';
      }
      {
        assertion = isAbsolute cfg.configRepo;
        message = ''services.devbox.configRepo must be an absolute path, e.g. "/etc/nixos".'';
      }
      {
        assertion = builtins.all (path: !(isAbsolute path)) [
          cfg.usersFile
          cfg.containersFile
          cfg.generatedDirInRepo
        ];
        message = ''
          services.devbox.usersFile, containersFile and generatedDirInRepo are relative to services.devbox.configRepo; drop the leading "/" (e.g. "devbox/users.nix").
        '';
      }
      {
        assertion = cfg.rebuildCommand != [ ];
        message = ''services.devbox.rebuildCommand is empty; set it to e.g. [ "nixos-rebuild" "switch" "--flake" "/etc/nixos#orchestrator" ].'';
      }
      {
        assertion = config.security.sudo.enable || config.security.sudo-rs.enable;
        message = ''
          services.devbox needs sudo for its one privileged command (devbox-privileged): enable security.sudo or security.sudo-rs.
        '';
      }
      {
        assertion =
          !(config.security.sudo.enable && config.security.sudo.execWheelOnly)
          && !(config.security.sudo-rs.enable && config.security.sudo-rs.execWheelOnly);
        message = ''
          security.sudo.execWheelOnly (or security.sudo-rs.execWheelOnly) makes sudo executable only by wheel, so devbox users cannot reach devbox-privileged.
          Set it to false: the devbox sudo rule allows exactly one command, ${privilegedCommand}.
        '';
      }
      {
        assertion = overlaps == [ ];
        message = ''
          users.users.<name>.subUidRanges/subGidRanges of users outside users.nix overlap devbox ranges (uid × 65536): ${lib.concatStringsSep "; " overlaps}.
          Move those ranges below 65536000 or remove them.
        '';
      }
    ]
    ++ concatMap
      (option: [
        {
          assertion = option.value == null || (isAbsolute option.value && !(isStorePath option.value));
          message = ''
            services.devbox.${option.name} = "${toString option.value}" must be an absolute path outside ${builtins.storeDir} (the store is world-readable): point it at a root-only file, e.g. under /run/keys or /var/lib/secrets.
          '';
        }
      ])
      [
        {
          name = "opTokenFile";
          value = cfg.opTokenFile;
        }
        {
          name = "tailscaleApiKeyFile";
          value = cfg.tailscaleApiKeyFile;
        }
      ]
    ++ concatLists (mapAttrsToList userAssertions users);

    virtualisation.podman.enable = true;

    users.users = builtins.mapAttrs (_: user: {
      isNormalUser = mkDefault true;
      # mkDefault so that a different uid elsewhere reaches the assertion above, which says
      # what to do, instead of a bare "conflicting definitions" error.
      uid = mkDefault user.uid;
      linger = mkDefault true;
      autoSubUidGidRange = mkDefault false;
      subUidRanges = [ (subUidRange user) ];
      subGidRanges = [ (subGidRange user) ];
    }) users;

    environment.systemPackages = [ cfg.package ];

    environment.etc = mkMerge [
      # users/<UID>/<file> → /etc/containers/systemd/users/<UID>/<file>: Quadlet's directory for
      # that uid's user manager (podman ≥ 4.6; podman-systemd.unit(5)).
      (mapAttrs' (
        path: _: nameValuePair "containers/systemd/${path}" { source = cfg.generatedDir + "/${path}"; }
      ) userUnitFiles)
      {
        "devbox/manifest.json".source = cfg.generatedDir + "/manifest.json";
        "devbox/config.json".text = builtins.toJSON {
          version = 1;
          inherit (cfg)
            configRepo
            usersFile
            containersFile
            rebuildCommand
            opTokenFile
            opVault
            tailscaleApiKeyFile
            tailnet
            stateDir
            ;
          generatedDir = cfg.generatedDirInRepo;
          inherit privilegedCommand;
          # A user's systemd manager runs what devbox hands it with systemd-run --machine
          # unresolved and searches only systemd's own bin/: podman must be named by its path.
          podman = "${podman}/bin/podman";
          privilegedEnvironment.PATH = privilegedPath;
        };
      }
    ];

    systemd.tmpfiles.rules = [ "d ${cfg.stateDir} 0700 root root - -" ];

    systemd.services =
      mapAttrs' (name: user: nameValuePair "devbox-apply-${name}" (applyService name user)) users
      // mapAttrs' (
        name: user: nameValuePair "devbox-image-${name}" (imageService name user)
      ) usersWithContainers;

    security.sudo.extraRules = mkIf config.security.sudo.enable [ sudoRule ];
    security.sudo.extraConfig = mkIf config.security.sudo.enable sudoDefaults;
    security.sudo-rs.extraRules = mkIf config.security.sudo-rs.enable [ sudoRule ];
  };
}
