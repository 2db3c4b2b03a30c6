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
    attrNames
    concatLists
    concatMap
    escapeShellArgs
    filterAttrs
    hasPrefix
    literalExpression
    mapAttrs'
    mapAttrsToList
    mkDefault
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    nameValuePair
    optional
    optionals
    types
    ;

  cfg = config.services.devbox;
  inherit (cfg) manifest;

  # A manifest of another schema version is refused by an assertion below; reading none of its
  # fields until then keeps that assertion the error the admin sees.
  supported = (manifest.version or null) == 1;
  users = if supported then manifest.users else { };
  userUnitFiles = if supported then filterAttrs (_: file: file.uid != null) manifest.files else { };
  usersWithContainers = filterAttrs (_: user: user.containers != [ ]) users;

  podman = config.virtualisation.podman.package;
  # The one command the sudo rule allows. sudo resets PATH, and the runtime verbs run git,
  # nix-instantiate, nixos-rebuild, op and systemd's systemctl/systemd-run (podman itself runs
  # as the owner, in the owner's systemd manager, with that manager's PATH).
  privileged = pkgs.writeShellApplication {
    name = "devbox-privileged";
    runtimeInputs = [
      cfg.package
      cfg.opPackage
      config.nix.package
      config.system.build.nixos-rebuild
      config.systemd.package
      pkgs.git
    ];
    text = ''exec ${cfg.package}/bin/devbox-privileged "$@"'';
  };
  privilegedCommand = "${privileged}/bin/devbox-privileged";
  manifestPath = "/etc/devbox/manifest.json";

  isStorePath = path: hasPrefix "${builtins.storeDir}/" (toString path);
  isAbsolute = path: hasPrefix "/" path;

  # Start = uid × 65536, count = 65536 (docs/manifest.md): fixed by the uid, so reordering
  # users.nix never moves a user's subordinate ids, which would orphan their rootless storage.
  subUidRange = user: {
    startUid = user.subUidRange.start;
    inherit (user.subUidRange) count;
  };
  subGidRange = user: {
    startGid = user.subUidRange.start;
    inherit (user.subUidRange) count;
  };

  # podman load prints "Loaded image: <reference>"; the image is then tagged with the name the
  # units use (Pull=never), so the flake's image may carry any name. The stamp in the owner's
  # state directory records which archive gave which image id, so an unchanged image is not
  # loaded again on every boot, and a deleted or retagged one is.
  loadImage = pkgs.writeShellApplication {
    name = "devbox-load-image";
    runtimeInputs = [
      podman
      pkgs.coreutils
      pkgs.gnused
    ];
    text = ''
      archive=$1
      reference=$2
      stamp_dir=''${XDG_STATE_HOME:-$HOME/.local/state}/devbox
      stamp=$stamp_dir/image

      image_id() {
        podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
      }

      current=$(image_id "$reference")
      if [[ -n $current && -f $stamp && $(<"$stamp") == "$archive $current" ]]; then
        echo "$reference is already loaded from $archive"
        exit 0
      fi

      echo "loading $archive as $reference"
      # dockerTools.streamLayeredImage gives a script that writes the archive to stdout;
      # buildLayeredImage and buildImage give the archive itself.
      if [[ -f $archive && -x $archive ]]; then
        output=$("$archive" | podman load --quiet)
      else
        output=$(podman load --quiet --input "$archive")
      fi
      # podman 4 and 5 print "Loaded image: REF", older ones "Loaded image(s): REF".
      loaded=$(sed -n -E 's/^Loaded image(\(s\))?: //p' <<<"$output" | head -n 1)
      loaded=''${loaded%%,*}
      if [[ -z $loaded ]]; then
        echo "podman load named no image: $output" >&2
        exit 1
      fi
      podman tag "$loaded" "$reference"
      new=$(image_id "$reference")

      mkdir -p "$stamp_dir"
      printf '%s %s\n' "$archive" "$new" >"$stamp.tmp"
      mv "$stamp.tmp" "$stamp"

      # Free the space of the images this one replaces. An image a container still runs is
      # refused by podman rmi (no --force) and stays until a later load.
      for repository in "''${loaded%:*}" "''${reference%:*}"; do
        podman images --no-trunc --noheading --format '{{.ID}}' --filter "reference=$repository" |
          while read -r id; do
            if [[ $id != "$new" && $id != "sha256:$new" ]]; then
              podman rmi "$id" >/dev/null 2>&1 || echo "keeping $id: a container still uses it"
            fi
          done
      done
    '';
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
        "${loadImage}/bin/devbox-load-image"
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

  sudoRule = {
    users = attrNames users;
    runAs = "root";
    # A command without arguments lets the caller pass any: devbox-privileged takes the verb
    # and checks the caller (SUDO_UID, which sudo sets) against users.nix itself.
    commands = [
      {
        command = privilegedCommand;
        options = [ "NOPASSWD" ];
      }
    ];
  };

  userAssertions =
    name: user:
    let
      declared = config.users.users.${name};
      ranges = map (range: { inherit (range) startUid count; }) declared.subUidRanges;
      gidRanges = map (range: { inherit (range) startGid count; }) declared.subGidRanges;
    in
    [
      {
        assertion = declared.uid == user.uid;
        message = ''
          users.users.${name}.uid is ${toString declared.uid}, but users.nix gives ${name} uid ${toString user.uid}.
          devbox installs ${name}'s units under /etc/containers/systemd/users/${toString user.uid}/ and derives the subordinate ids from that uid:
          remove the other definition of users.users.${name}.uid, or change the uid in users.nix and run `devbox-ctl generate`.
        '';
      }
      {
        assertion = declared.linger == true;
        message = ''
          users.users.${name}.linger is not true: ${name}'s containers would start only when ${name} logs in.
          Remove the definition that sets it; services.devbox sets it to true for every user in users.nix.
        '';
      }
      {
        assertion = !declared.autoSubUidGidRange;
        message = ''
          users.users.${name}.autoSubUidGidRange is true, which would give ${name} a second, moving subordinate range.
          Remove that definition; services.devbox sets a fixed range from the uid.
        '';
      }
      {
        assertion = ranges == [ (subUidRange user) ] && gidRanges == [ (subGidRange user) ];
        message = ''
          users.users.${name}.subUidRanges/subGidRanges must be exactly [ { startUid = ${toString user.subUidRange.start}; count = ${toString user.subUidRange.count}; } ] (uid × 65536, from generated/manifest.json).
          Remove the other definitions: a changed range makes ${name}'s existing rootless storage unreadable.
        '';
      }
    ];

  # Explicit ranges of users devbox does not manage must not overlap a devbox range.
  overlaps =
    let
      devboxRanges = mapAttrsToList (name: user: {
        inherit name;
        start = user.subUidRange.start;
        end = user.subUidRange.start + user.subUidRange.count;
      }) users;
      others = filterAttrs (name: _: !(users ? ${name})) config.users.users;
      otherRanges = concatLists (
        mapAttrsToList (
          name: declared:
          map (range: {
            inherit name;
            start = range.startUid;
            end = range.startUid + range.count;
          }) declared.subUidRanges
          ++ map (range: {
            inherit name;
            start = range.startGid;
            end = range.startGid + range.count;
          }) declared.subGidRanges
        ) others
      );
    in
    concatMap (
      mine:
      map (other: "${other.name} (${toString other.start}–${toString other.end}) overlaps ${mine.name}") (
        builtins.filter (other: other.start < mine.end && mine.start < other.end) otherRanges
      )
    ) devboxRanges;

  stringPathOption =
    {
      description,
      default,
      example ? null,
      nullable ? false,
    }:
    mkOption (
      {
        type = if nullable then types.nullOr types.str else types.str;
        inherit default description;
      }
      // lib.optionalAttrs (example != null) { inherit example; }
    );
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

    opPackage = mkOption {
      type = types.package;
      default = pkgs._1password-cli;
      defaultText = literalExpression "pkgs._1password-cli";
      description = ''
        The 1Password CLI ({command}`op`) that fetches each owner's Tailscale auth key with the
        service-account token. It is unfree in nixpkgs: allow it
        (`nixpkgs.config.allowUnfreePredicate`), or set another package providing {command}`op`.
      '';
      example = literalExpression "pkgs._1password-cli";
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
      default = [
        "nixos-rebuild"
        "switch"
      ];
      example = [
        "nixos-rebuild"
        "switch"
        "--flake"
        "/etc/nixos#orchestrator"
      ];
      description = "The command (argv) that applies the configuration after devbox-ctl committed a change.";
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
    security.sudo-rs.extraRules = mkIf config.security.sudo-rs.enable [ sudoRule ];
  };
}
