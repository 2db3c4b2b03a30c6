# The daily cleanup of the devbox orchestrator (idle stop, warnings, auto-destroy): the
# generated devbox-cleanup.service and .timer (generated/system/, or the host's slice's
# system/ in a fleet) installed as they are, plus a
# drop-in with what `devbox-ctl cleanup` needs on PATH and hardening that keeps rootless podman
# working. Imported by orchestrator.nix.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    attrNames
    mapAttrsToList
    mkIf
    mkOption
    types
    ;

  cfg = config.services.devbox;
  inherit (cfg) manifest;

  devbox = import ./lib.nix { inherit lib; };
  inherit (devbox.fromManifest manifest)
    supported
    systemUnitFiles
    users
    ;

  # generated/system/<unit> (in a fleet, generated/hosts/<hostName>/system/<unit>) →
  # lib/systemd/system/<unit>, for systemd.packages.
  cleanupUnits = pkgs.linkFarm "devbox-cleanup-units" (
    mapAttrsToList (path: _: {
      name = "lib/systemd/system/${baseNameOf path}";
      path = cfg.source.dir + "/${path}";
    }) systemUnitFiles
  );

  homes = map (name: config.users.users.${name}.home) (attrNames users);
in
{
  options.services.devbox.cleanup = {
    schedule = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "Mon..Fri 03:30";
      description = ''
        When the cleanup runs, in {manpage}`systemd.time(7)` calendar form, overriding the
        generated timer's `OnCalendar=` (`containers.cleanupSchedule` of users.nix). Null: the
        generated schedule.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion =
          !supported
          || (systemUnitFiles ? "system/devbox-cleanup.service" && systemUnitFiles ? "system/devbox-cleanup.timer");
        message = ''
          services.devbox.generatedDir has no system/devbox-cleanup.service and .timer in its manifest.
          Regenerate it with `devbox-ctl generate`.
        '';
      }
    ];

    # NixOS installs units from packages but ignores their [Install] sections, so the timer is
    # enabled through wantedBy below.
    # https://nixos.org/manual/nixos/stable/#sect-nixos-systemd-nixos
    systemd.packages = [ cleanupUnits ];

    systemd.timers.devbox-cleanup = {
      overrideStrategy = "asDropin";
      wantedBy = [ "timers.target" ];
      # An empty OnCalendar= first clears the generated schedule (systemd.timer(5)).
      timerConfig = mkIf (cfg.cleanup.schedule != null) {
        OnCalendar = [
          ""
          cfg.cleanup.schedule
        ];
      };
    };

    systemd.services.devbox-cleanup = {
      overrideStrategy = "asDropin";
      # A run may take long (snapshots) and may itself run nixos-rebuild switch: a switch
      # must not restart it; a changed definition applies from the next run, as for
      # system.autoUpgrade's nixos-upgrade.service.
      restartIfChanged = false;
      path = [
        cfg.package
        config.virtualisation.podman.package
        config.nix.package
        config.system.build.nixos-rebuild
        pkgs.git
        pkgs.gnutar
        pkgs.gzip
        pkgs.util-linux
        # setuid newuidmap/newgidmap for rootless podman
        "/run/wrappers"
      ]
      # A fleet's control host asks every host over SSH and deploys them (colmena): the
      # same programs as devbox-privileged has.
      ++ devbox.controlPackages cfg;
      # The flake evaluation of a rebuild writes its cache here instead of /root/.cache.
      environment.XDG_CACHE_HOME = "/var/cache/devbox";
      serviceConfig = {
        CacheDirectory = "devbox";
        # Read-only system, with the exceptions cleanup writes to: its state, the config
        # repository it commits to, the system profile a rebuild sets (builds go through the
        # nix-daemon, and nixos-rebuild runs switch-to-configuration in a unit of its own), and
        # what rootless podman of the owners needs: /run/user/<uid> (XDG_RUNTIME_DIR) and their
        # homes (storage). ProtectHome would hide both.
        # Because of this sandbox, devbox-ctl acts on containers through each owner's systemd
        # manager (systemctl/systemd-run --user -M <user>@): the first rootless podman of an
        # owner started directly in this unit would start the owner's pause process, and every
        # later podman command of that owner would share this unit's mount namespace.
        ProtectSystem = "strict";
        ProtectHome = false;
        ReadWritePaths = [
          cfg.stateDir
          "-${cfg.configRepo}"
          "/nix/var/nix"
          "/run/user"
        ]
        ++ map (home: "-${home}") homes;
        PrivateTmp = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectClock = true;
        ProtectHostname = true;
        LockPersonality = true;
        RestrictRealtime = true;
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
        ];
        SystemCallArchitectures = "native";
        # Not NoNewPrivileges: newuidmap and newgidmap are setuid.
      };
    };
  };
}
