# The devbox orchestrator: the generated tree (generated/manifest.json and the Quadlet units
# beside it; in a fleet, this host's slice generated/hosts/<hostName>/) turned into users,
# rootless podman, unit files, the dev-container image in each owner's storage, and a restart
# of exactly the containers whose units changed.
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
  inherit (cfg) manifest source;

  devbox = import ./lib.nix { inherit lib; };
  inherit (devbox.fromManifest manifest)
    nixDaemon
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
  nixRoots = "/nix/var/nix/gcroots/devbox";
  # What each owner loads. With the host's daemon the containers mount this host's /nix/store over
  # the image's, and the module keeps the image's store paths here (system.extraDependencies), so
  # the owners load the image without them (the devbox image's hostStoreImage): stored once for
  # every user, and a new image is a load of seconds (docs/image.md, "Where the image is stored").
  loadedImage = if nixDaemon then cfg.image.hostStoreImage or cfg.image else cfg.image;
  # Devbox users the daemon would trust: named, through a group of theirs (a normal user's
  # primary group is "users"), or everyone ("*"). Read only when nix.enable (no value otherwise).
  trustedDevboxUsers =
    let
      trusted = config.nix.settings.trusted-users;
      groupsOf =
        name:
        let
          user = config.users.users.${name};
        in
        [ user.group ] ++ user.extraGroups;
    in
    builtins.filter (
      name:
      builtins.elem "*" trusted
      || builtins.elem name trusted
      || builtins.any (group: builtins.elem "@${group}" trusted) (groupsOf name)
    ) (builtins.attrNames users);
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
  ]
  # The fleet's control host also deploys the other hosts and reaches them over SSH.
  ++ devbox.controlPackages cfg;
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

  # /etc/devbox/config.json (docs/host-config.md): what devbox-ctl reads of this host. A
  # fleet adds its fields; a single host's file is the same as before fleets existed.
  hostConfig = {
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
  }
  // devbox.fleetConfig {
    inherit (source) fleet;
    inherit (cfg) hostName;
    inherit (cfg.fleet)
      control
      deployCommand
      sshCommand
      remoteCommand
      ;
  };

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
        "${loadedImage}"
        manifest.settings.image
      ];
      TimeoutStartSec = "15min";
    };
  };

  # nixos-rebuild switch re-executes each lingering user's systemd manager (which reruns
  # Quadlet) before it restarts changed system units, but it never restarts changed user units.
  # This oneshot is such a system unit: its restart triggers are the hashes of the user's units
  # and declared states, so it runs exactly when one of them changed, and devbox-ctl apply
  # restarts, starts or stops exactly the containers that changed (docs/host-config.md). The
  # units have no [Install]: at boot (and when the user's manager restarts, through Requires)
  # this unit starts the containers whose run state is running (docs/orchestrator.md). Its
  # command line does not name the manifest's store path, so another user's change does not
  # touch this unit.
  applyService = name: user: {
    description = "devbox: start, restart and stop ${name}'s dev containers as declared";
    wantedBy = [ "multi-user.target" ];
    requires = [ "user@${toString user.uid}.service" ];
    wants = [ "linger-users.service" ] ++ optional (user.containers != [ ]) "devbox-image-${name}.service";
    # systemd-tmpfiles-resetup: a switch that adds a user makes their GC-roots directory, which
    # the containers mount, before apply starts them.
    after = [
      "linger-users.service"
      "user@${toString user.uid}.service"
      "systemd-tmpfiles-resetup.service"
    ]
    ++ optional (user.containers != [ ]) "devbox-image-${name}.service";
    restartTriggers = [
      user.unitsSha256
      user.statesSha256
    ]
    ++ optional cfg.restartOnImageChange "${loadedImage}";
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
          "${loadedImage}"
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

        With users.nix `containers.nixDaemon` (the default) the containers mount this host's
        /nix/store, so the image must name the store paths it refers to in `storeContents`
        (they are kept in this host's store), and each owner loads its `hostStoreImage` (the
        same image built with `includeStorePaths = false`) when it has one.
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

    source = mkOption {
      type = types.attrs;
      internal = true;
      readOnly = true;
      default = devbox.hostSource cfg.generatedDir cfg.hostName;
      defaultText = literalExpression "(import ./lib.nix { inherit lib; }).hostSource generatedDir hostName";
      description = ''
        What this host reads of {option}`services.devbox.generatedDir`: the manifest file, the
        directory its unit paths are relative to (the slice `hosts/<hostName>/` in a fleet), and
        what is wrong with the fleet's slice for this host (nixos/lib.nix, `hostSource`).
      '';
    };

    manifest = mkOption {
      type = types.attrs;
      internal = true;
      readOnly = true;
      default = if source.manifest == null then { } else source.manifest;
      defaultText = literalExpression "config.services.devbox.source.manifest";
      description = ''
        The generated manifest this host reads (docs/manifest.md): generatedDir/manifest.json on a
        single host, this host's slice manifest in a fleet; empty when the slice cannot be used.
      '';
    };

    hostName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      example = "alpha";
      description = ''
        This host's name in the fleet: one of the `hosts` of users.nix. In a fleet the module
        installs only that host's slice of the generated directory
        ({file}`hosts/<hostName>/`), and devbox-ctl names the host by it. Unused on a single
        host (users.nix without `hosts`).
      '';
    };

    fleet = {
      control = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Whether this host is the fleet's control host: it holds the config repository
          ({option}`services.devbox.configRepo`) and runs the verbs that change the fleet
          (create, deploy, move, drain), deploying the other hosts with
          {option}`services.devbox.fleet.deployCommand` and reaching them with
          {option}`services.devbox.fleet.sshCommand`. Every other host of a fleet is a member:
          its declaration is its deployed slice, and it has no config repository. Only one host
          of a fleet sets it.
        '';
      };

      deployCommand = mkOption {
        type = types.listOf types.str;
        default = [
          "colmena"
          "apply"
          "--on"
          "{host}"
        ];
        example = [
          "nixos-rebuild"
          "switch"
          "--flake"
          "{flake}#{host}"
          "--target-host"
          "{reach}"
        ];
        description = ''
          The command (argv, never a shell string) that deploys one host of the fleet, run on
          the control host in the config repository. In each word, `{host}` is the host's name,
          `{reach}` its SSH destination (`reach` in users.nix) and `{flake}` the config
          repository's path; any other `{…}` is an error. deploy-rs:
          `[ "deploy" "--skip-checks" "{flake}#{host}" ]`.
        '';
      };

      sshCommand = mkOption {
        type = types.listOf types.str;
        default = [
          "ssh"
          "-o"
          "BatchMode=yes"
          "-o"
          "ConnectTimeout=10"
          "--"
          "{reach}"
        ];
        description = ''
          The command (argv) the control host runs another host's devbox-ctl through, with
          `{reach}` the host's SSH destination. The remote command follows as separate words,
          each quoted for the remote shell. It runs as root, with root's SSH keys.
        '';
      };

      packages = mkOption {
        type = types.listOf types.package;
        default = [
          pkgs.colmena
          pkgs.openssh
        ];
        defaultText = literalExpression "[ pkgs.colmena pkgs.openssh ]";
        example = literalExpression "[ pkgs.deploy-rs pkgs.openssh ]";
        description = ''
          The programs {option}`services.devbox.fleet.deployCommand` and
          {option}`services.devbox.fleet.sshCommand` run, on the PATH devbox-privileged gives
          its programs on the control host (the fixed PATH of config.json's
          `privilegedEnvironment`) and on the PATH of the daily `devbox-cleanup.service`,
          which reaches and deploys every host. Unused on members and on a single host.
        '';
      };

      remoteCommand = mkOption {
        type = types.listOf types.str;
        default = [ "devbox-ctl" ];
        description = ''
          devbox-ctl on the other hosts, as the SSH session runs it (the module puts it on the
          system PATH of every host).
        '';
      };
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

    nix = {
      maxJobs = mkOption {
        type = types.ints.positive;
        default = 2;
        description = ''
          With users.nix `containers.nixDaemon` (the default): the host's `max-jobs`, a default
          (mkDefault). It is not a bound on the containers: each client sends its own `max-jobs`
          per connection, and the daemon applies it; devbox-nix.slice is what bounds all their
          builds together (docs/nix-in-containers.md).
        '';
      };
      cores = mkOption {
        type = types.ints.positive;
        default = 2;
        description = ''
          The host's `cores` (NIX_BUILD_CORES of a build), a default like `maxJobs`: a client's own
          value wins for its builds.
        '';
      };
      memoryMax = mkOption {
        type = types.str;
        default = "50%";
        example = "16G";
        description = ''
          MemoryMax of devbox-nix.slice, where nix-daemon and every build it runs live: builds run
          outside the containers' own limits, so this bounds them all together.
        '';
      };
      cpuQuota = mkOption {
        type = types.str;
        default = "200%";
        description = "CPUQuota of devbox-nix.slice (100% is one CPU).";
      };
      minFree = mkOption {
        type = types.ints.unsigned;
        default = 5 * 1024 * 1024 * 1024;
        description = ''
          The daemon's `min-free` in bytes: when the store's disk has less free, a build triggers a
          garbage collection (up to `maxFree`), so that one user's builds cannot fill the disk.
        '';
      };
      maxFree = mkOption {
        type = types.ints.unsigned;
        default = 20 * 1024 * 1024 * 1024;
        description = "The daemon's `max-free` in bytes: what such a collection frees up to.";
      };
      gcDates = mkOption {
        type = types.str;
        default = "weekly";
        description = ''
          When the host's automatic garbage collection (`nix.gc`) runs. It keeps what containers
          link under /nix/var/nix/gcroots/devbox/ and takes what only a container's home refers
          to (docs/nix-in-containers.md).
        '';
      };
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
        # A fleet's slice that cannot be used has its own assertions (below).
        assertion = supported || source.problems != [ ];
        message = ''
          services.devbox.generatedDir: ${source.name} has version ${builtins.toJSON (manifest.version or null)}, and this module reads version 1.
          Regenerate it with the devbox-ctl of the devbox input this host uses (`devbox-ctl generate`), or update that input.
        '';
      }
      {
        assertion = source.fleet || !cfg.fleet.control;
        message = ''
          services.devbox.fleet.control is true, but generated/manifest.json declares no fleet (users.nix has no `hosts`).
          Declare the hosts in users.nix and run `devbox-ctl generate`, or remove services.devbox.fleet.control.
        '';
      }
      {
        assertion =
          !source.fleet
          || builtins.all (command: command != [ ]) [
            cfg.fleet.deployCommand
            cfg.fleet.sshCommand
            cfg.fleet.remoteCommand
          ];
        message = ''
          services.devbox.fleet.deployCommand, sshCommand and remoteCommand must not be empty; remove the definition to get the default (e.g. [ "colmena" "apply" "--on" "{host}" ]).
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
    ++ optionals nixDaemon [
      {
        assertion = config.nix.enable;
        message = ''
          users.nix containers.nixDaemon is true, but nix.enable is false: the containers would mount a daemon socket and a store this host does not run.
          Enable Nix (nix.enable = true), or set users.nix containers.nixDaemon = false and run `devbox-ctl generate`.
        '';
      }
      {
        assertion = !config.nix.enable || trustedDevboxUsers == [ ];
        message = ''
          nix.settings.trusted-users makes ${lib.concatStringsSep ", " trustedDevboxUsers} trusted by the daemon (by name, by a group of theirs, or "*"); a trusted user can change the daemon's settings and import unsigned paths, which every container would then run.
          Remove those entries from nix.settings.trusted-users (docs/nix-in-containers.md).
        '';
      }
      {
        assertion = !config.nix.enable || builtins.elem "*" config.nix.settings.allowed-users;
        message = ''
          nix.settings.allowed-users does not contain "*": a container's user reaches the daemon as an unnamed subordinate uid, which no other entry can name.
          Add "*" to nix.settings.allowed-users, or set users.nix containers.nixDaemon = false.
        '';
      }
      {
        assertion = !config.nix.enable || config.nix.settings.sandbox == true;
        message = ''
          nix.settings.sandbox is ${builtins.toJSON config.nix.settings.sandbox}: the containers' builds run as the host's build users, and only the sandbox keeps them from the host's files and each other's (with "relaxed", a derivation may turn it off).
          Remove the setting (NixOS's default is true), or set users.nix containers.nixDaemon = false.
        '';
      }
      {
        assertion = cfg.image ? storeContents;
        message = ''
          services.devbox.image has no `storeContents`: with users.nix containers.nixDaemon the containers see this host's /nix/store in place of the image's, so the image's store paths must be kept here.
          Use the devbox flake's image (it lists them), add `storeContents = [ … ]` to yours, or set users.nix containers.nixDaemon = false.
        '';
      }
    ]
    ++ map (message: {
      assertion = false;
      inherit message;
    }) source.problems
    ++ concatLists (mapAttrsToList userAssertions users);

    warnings = optional (nixDaemon && !(cfg.image ? hostStoreImage)) ''
      services.devbox.image has no `hostStoreImage`: every container owner loads the whole image, store paths included, although the containers mount this host's /nix/store over them (users.nix containers.nixDaemon).
      Add `hostStoreImage = dockerTools.buildLayeredImage (<the same arguments> // { includeStorePaths = false; })` to the image, as the devbox flake's image does (docs/image.md).
    '';

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
        path: _: nameValuePair "containers/systemd/${path}" { source = source.dir + "/${path}"; }
      ) userUnitFiles)
      {
        # In a fleet, the slice: the declaration devbox-ctl on this host reads.
        "devbox/manifest.json".source = source.file;
        "devbox/config.json".text = builtins.toJSON hostConfig;
      }
    ];

    systemd.tmpfiles.rules = [
      "d ${cfg.stateDir} 0700 root root - -"
    ]
    # Each owner's GC roots, mounted into their containers (the unit chowns it to dev).
    ++ optionals nixDaemon (
      [ "d ${nixRoots} 0755 root root - -" ]
      ++ mapAttrsToList (
        # The owner's own primary group: it is mapped in their podman's user namespace, where :U
        # chowns the directory to dev.
        name: _: "d ${nixRoots}/${name} 0755 ${name} ${config.users.users.${name}.group} - -"
      ) users
    );

    systemd.services =
      mapAttrs' (name: user: nameValuePair "devbox-apply-${name}" (applyService name user)) users
      // mapAttrs' (
        name: user: nameValuePair "devbox-image-${name}" (imageService name user)
      ) usersWithContainers
      // lib.optionalAttrs nixDaemon {
        # Builds run in the daemon's cgroup, outside every container's limits: the slice bounds them.
        nix-daemon.serviceConfig.Slice = "devbox-nix.slice";
      };

    # Nix in every container through this host's daemon (docs/nix-in-containers.md).
    # Defaults only: a host that sets its own values keeps them (the sandbox is asserted above).
    nix.settings = mkIf nixDaemon {
      max-jobs = mkDefault cfg.nix.maxJobs;
      cores = mkDefault cfg.nix.cores;
      min-free = mkDefault cfg.nix.minFree;
      max-free = mkDefault cfg.nix.maxFree;
    };

    nix.gc = mkIf nixDaemon {
      automatic = mkDefault true;
      dates = mkDefault cfg.nix.gcDates;
    };

    systemd.slices.devbox-nix = mkIf nixDaemon {
      description = "nix-daemon and the builds of devbox containers";
      sliceConfig = {
        MemoryMax = cfg.nix.memoryMax;
        CPUQuota = cfg.nix.cpuQuota;
      };
    };

    # The containers run the image's programs from the host's store.
    system.extraDependencies = mkIf nixDaemon (cfg.image.storeContents or [ ]);

    security.sudo.extraRules = mkIf config.security.sudo.enable [ sudoRule ];
    security.sudo.extraConfig = mkIf config.security.sudo.enable sudoDefaults;
    security.sudo-rs.extraRules = mkIf config.security.sudo-rs.enable [ sudoRule ];
  };
}
