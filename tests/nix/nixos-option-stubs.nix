# Test-only declarations of the NixOS options that nixos/orchestrator.nix sets or reads, with
# the types and defaults they have in nixpkgs (docs/nix-checked.md, section "NixOS module", says
# where each was checked). Declarations only: no implementation, so lib.evalModules with the
# nixpkgs library alone shows exactly what the module defines. The packages come from
# stub-pkgs.nix (the evaluation sets `_module.args.pkgs`).
{ lib, ... }:
let
  inherit (lib) mkOption types;

  stubPackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };

  list = type: mkOption {
    type = types.listOf type;
    default = [ ];
  };

  subordinateRange = idName: {
    options = {
      ${idName} = mkOption { type = types.int; };
      count = mkOption {
        type = types.int;
        default = 1;
      };
    };
  };

  userOptions =
    { name, config, ... }:
    {
      options = {
        isNormalUser = mkOption {
          type = types.bool;
          default = false;
        };
        uid = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        home = mkOption {
          type = types.str;
          default = "/var/empty";
        };
        linger = mkOption {
          type = types.nullOr types.bool;
          default = null;
        };
        group = mkOption {
          type = types.str;
          default = "";
        };
        extraGroups = list types.str;
        autoSubUidGidRange = mkOption {
          type = types.bool;
          default = false;
        };
        subUidRanges = list (types.submodule (subordinateRange "startUid"));
        subGidRanges = list (types.submodule (subordinateRange "startGid"));
      };
      # As in nixos/modules/config/users-groups.nix.
      config = lib.mkIf config.isNormalUser {
        home = lib.mkDefault "/home/${name}";
        group = lib.mkDefault "users";
        autoSubUidGidRange = lib.mkIf (config.subUidRanges == [ ] && config.subGidRanges == [ ]) (
          lib.mkDefault true
        );
      };
    };

  unitCommon = {
    wantedBy = list types.str;
    overrideStrategy = mkOption {
      type = types.enum [
        "asDropinIfExists"
        "asDropin"
      ];
      default = "asDropinIfExists";
    };
  };

  serviceOptions = {
    options = unitCommon // {
      description = mkOption {
        type = types.str;
        default = "";
      };
      wants = list types.str;
      requires = list types.str;
      after = list types.str;
      restartTriggers = list types.unspecified;
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      path = list (
        types.oneOf [
          types.package
          types.str
        ]
      );
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      serviceConfig = mkOption {
        type = types.attrsOf types.anything;
        default = { };
      };
    };
  };

  timerOptions = {
    options = unitCommon // {
      timerConfig = mkOption {
        type = types.attrsOf types.anything;
        default = { };
      };
    };
  };

  sudoOptions = enabled: {
    enable = mkOption {
      type = types.bool;
      default = enabled;
    };
    execWheelOnly = mkOption {
      type = types.bool;
      default = false;
    };
    extraConfig = mkOption {
      type = types.lines;
      default = "";
    };
    extraRules = list (
      types.submodule {
        options = {
          users = list (types.either types.str types.int);
          groups = list (types.either types.str types.int);
          host = mkOption {
            type = types.str;
            default = "ALL";
          };
          runAs = mkOption {
            type = types.str;
            default = "ALL:ALL";
          };
          commands = list (
            types.either types.str (
              types.submodule {
                options = {
                  command = mkOption { type = types.str; };
                  options = list types.str;
                };
              }
            )
          );
        };
      }
    );
  };
in
{
  options = {
    assertions = list types.unspecified;
    warnings = list types.str;

    users.users = mkOption {
      type = types.attrsOf (types.submodule userOptions);
      default = { };
    };

    virtualisation.podman = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      package = mkOption {
        type = types.package;
        default = stubPackage "podman";
      };
    };

    environment.systemPackages = list types.package;
    environment.etc = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            source = mkOption {
              type = types.nullOr types.path;
              default = null;
            };
            text = mkOption {
              type = types.nullOr types.lines;
              default = null;
            };
            mode = mkOption {
              type = types.str;
              default = "symlink";
            };
          };
        }
      );
      default = { };
    };

    systemd.package = mkOption {
      type = types.package;
      default = stubPackage "systemd";
    };
    systemd.packages = list types.package;
    systemd.tmpfiles.rules = list types.str;
    systemd.services = mkOption {
      type = types.attrsOf (types.submodule serviceOptions);
      default = { };
    };
    systemd.timers = mkOption {
      type = types.attrsOf (types.submodule timerOptions);
      default = { };
    };

    security.sudo = sudoOptions true;
    security.sudo-rs = sudoOptions false;

    # nixos/modules/tasks/network-interfaces.nix: default config.system.nixos.distroId ("nixos").
    networking.hostName = mkOption {
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = "nixos";
    };

    nix.package = mkOption {
      type = types.package;
      default = stubPackage "nix";
    };
    nix.enable = mkOption {
      type = types.bool;
      default = true;
    };
    # nixos/modules/config/nix.nix: a freeform submodule. trusted-users is [ "root" ] only when
    # nix.enable (nixos/modules/services/system/nix-daemon.nix); sandbox defaults to true.
    nix.settings = mkOption {
      type = types.submodule {
        freeformType = types.attrsOf types.anything;
        options = {
          trusted-users = mkOption {
            type = types.listOf types.str;
            default = [ "root" ];
          };
          allowed-users = mkOption {
            type = types.listOf types.str;
            default = [ "*" ];
          };
          sandbox = mkOption {
            type = types.either types.bool (types.enum [ "relaxed" ]);
            default = true;
          };
        };
      };
      default = { };
    };
    # nixos/modules/services/misc/nix-gc.nix
    nix.gc = {
      automatic = mkOption {
        type = types.bool;
        default = false;
      };
      dates = mkOption {
        type = types.either types.singleLineStr (types.listOf types.str);
        default = [ "03:15" ];
      };
    };
    systemd.slices = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = unitCommon // {
            description = mkOption {
              type = types.str;
              default = "";
            };
            sliceConfig = mkOption {
              type = types.attrsOf types.anything;
              default = { };
            };
          };
        }
      );
      default = { };
    };
    # nixos/modules/system/activation/top-level.nix: listOf pathInStore. The stand-in packages'
    # paths are /nix/store/0…-name strings, which are not in the store of the sandboxed check's
    # evaluation (pathInStore compares with builtins.storeDir): a derivation passes as well.
    system.extraDependencies = list (types.either types.pathInStore types.package);
    system.build = mkOption {
      type = types.lazyAttrsOf types.unspecified;
      default = { };
    };
  };

  config = {
    system.build.nixos-rebuild = stubPackage "nixos-rebuild";
  };
}
