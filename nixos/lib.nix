# What the orchestrator module (orchestrator.nix) and its cleanup (orchestrator-cleanup.nix)
# read from the generated tree (the host's own slice of it in a fleet), and the pieces of the
# module that are plain functions of it: the subordinate id ranges, the sudo rule, the per-user
# assertions, the check that other users' ranges stay clear of devbox's, and the fleet fields of
# config.json. Imported by both modules and by the flake (its lib.fleetHive and
# lib.fleetModules, defined below); no options, no config.
{ lib }:
let
  inherit (lib)
    attrNames
    concatLists
    concatMap
    concatStringsSep
    filterAttrs
    hasPrefix
    mapAttrsToList
    mkOption
    optionalAttrs
    types
    ;

  readJSON = path: builtins.fromJSON (builtins.readFile path);
in
rec {
  # What this host reads of the generated tree (docs/manifest.md):
  # - no fleet (the top manifest.json has no `fleet`): manifest.json and the units beside it,
  #   exactly as before fleets existed;
  # - a fleet: the slice hosts/<hostName>/, whose manifest.json must have the SHA-256 the
  #   fleet index gives it. An index and a slice from different generations (a partial commit,
  #   a hand edit) would install units the control host did not plan for this host.
  # The slice path is built from hostName only once the index declares that host, so no
  # other name ever becomes a path. `manifest` is null when `problems` is not empty; then
  # the module installs nothing and its assertions show the problems.
  hostSource =
    generatedDir: hostName:
    let
      index = readJSON (generatedDir + "/manifest.json");
      fleet = (index.version or null) == 1 && index ? fleet;
      declared = index.fleet.hosts;
      hosts = attrNames declared;
      slice = "hosts/${hostName}";
      dir = generatedDir + "/${slice}";
      file = dir + "/manifest.json";
      expected = declared.${hostName}.manifestSha256 or null;
      actual = builtins.hashFile "sha256" file;
      sliceManifest = readJSON file;
      declaredNames = if hosts == [ ] then "no hosts" else concatStringsSep ", " hosts;
      regenerate = "Run `devbox-ctl generate` on the control host and commit the whole generated directory.";
      problem =
        if !(declared ? ${hostName}) then
          ''
            services.devbox.hostName is "${hostName}", which is not a host of this fleet: generated/manifest.json declares ${declaredNames}.
            Set services.devbox.hostName to this host's name in the `hosts` of users.nix (it defaults to networking.hostName), or declare the host there and run `devbox-ctl generate`.
          ''
        else if !(builtins.pathExists file) then
          ''
            services.devbox.generatedDir has no ${slice}/manifest.json, though manifest.json declares the host ${hostName}.
            ${regenerate}
          ''
        else if actual != expected then
          ''
            services.devbox.generatedDir: ${slice}/manifest.json has SHA-256 ${actual}, but the fleet index manifest.json gives ${toString expected}: the index and this host's slice are from different generations.
            ${regenerate}
          ''
        else if (sliceManifest.host or null) != hostName then
          ''
            services.devbox.generatedDir: ${slice}/manifest.json is the slice of host ${builtins.toJSON (sliceManifest.host or null)}, not of ${hostName}.
            ${regenerate}
          ''
        else
          null;
      problems = lib.optional (problem != null) problem;
    in
    if !fleet then
      {
        fleet = false;
        hosts = [ ];
        dir = generatedDir;
        file = generatedDir + "/manifest.json";
        name = "manifest.json";
        manifest = index;
        problems = [ ];
      }
    else
      {
        fleet = true;
        inherit
          hosts
          dir
          file
          problems
          ;
        name = "${slice}/manifest.json";
        manifest = if problems == [ ] then sliceManifest else null;
      };

  # A fleet's hosts as the generated fleet index declares them (name → its entry: reach,
  # labels, capacity, slice). The index, not users.nix: it is what the generator checked and
  # what each host's module reads, so the hosts deployed are exactly the hosts with a slice.
  fleetHosts =
    generatedDir:
    let
      index = readJSON (generatedDir + "/manifest.json");
    in
    if (index.version or null) == 1 && index ? fleet then
      index.fleet.hosts
    else
      throw ''
        devbox fleet: ${toString generatedDir}/manifest.json declares no fleet (version ${builtins.toJSON (index.version or null)}, no `fleet`).
        Declare the hosts in users.nix (`hosts`) and run `devbox-ctl generate`.
      '';

  # An SSH destination as OpenSSH splits it (at the last "@", ssh.c), as the attributes of
  # colmena's `deployment`: "user@host" names both, a bare "host" only the host (colmena's
  # targetUser then stays at its default, root).
  reachTarget =
    reach:
    let
      parts = builtins.match "(.*)@([^@]*)" reach;
    in
    if parts == null then
      { targetHost = reach; }
    else
      {
        targetUser = builtins.elemAt parts 0;
        targetHost = builtins.elemAt parts 1;
      };

  # The NixOS modules of every host of a fleet, by host name: the orchestrator module
  # (`module`, the flake's nixosModules.orchestrator) enabled with the host's name and the
  # generated directory, then the host's own modules (`hosts.<name>`: a module or a list). A
  # name in `hosts` the fleet does not declare is an error, not a module silently unused. Plain
  # NixOS modules: nixosSystem (deploy-rs, nixos-rebuild --target-host) takes them as they are.
  fleetModules =
    {
      module,
      generatedDir,
      hosts ? { },
    }:
    let
      declared = fleetHosts generatedDir;
      unknown = builtins.filter (name: !(declared ? ${name})) (attrNames hosts);
      asList = modules: if builtins.isList modules then modules else [ modules ];
    in
    if unknown != [ ] then
      throw ''
        devbox fleet: hosts has ${concatStringsSep ", " unknown}, which ${toString generatedDir}/manifest.json does not declare (it declares ${concatStringsSep ", " (attrNames declared)}).
        Fix the name, or declare the host in users.nix and run `devbox-ctl generate`.
      ''
    else
      builtins.mapAttrs (
        name: _:
        [
          module
          {
            services.devbox = {
              enable = lib.mkDefault true;
              hostName = name;
              inherit generatedDir;
            };
          }
        ]
        ++ asList (hosts.${name} or [ ])
      ) declared;

  # colmena's hive (the flake's `colmena` output) for a fleet: `meta` as colmena reads it
  # (meta.nixpkgs an initialised package set, optional nodeNixpkgs, specialArgs, …), `defaults`
  # for every host, and one node per declared host: fleetModules plus colmena's
  # deployment.targetHost/targetUser from the host's `reach` (mkDefault, so a host module may
  # override them). Checked against colmena v0.4.0 (the version nixpkgs packages,
  # pkgs/by-name/co/colmena/package.nix) and its main branch (0.5.0-pre):
  # src/nix/hive/eval.nix (a node is a module or a list of modules; `meta`, `defaults` and
  # `network` are reserved names) and src/nix/hive/options.nix (deployment.targetHost and
  # targetUser: nullOr str). docs/fleet.md shows colmena ≥ 0.5's colmenaHive output.
  fleetHive =
    {
      module,
      meta,
      generatedDir,
      hosts ? { },
      defaults ? { },
    }:
    let
      declared = fleetHosts generatedDir;
      nodes = fleetModules { inherit module generatedDir hosts; };
      reserved = builtins.filter (name: nodes ? ${name}) [
        "defaults"
        "meta"
        "network"
      ];
    in
    if reserved != [ ] then
      throw ''
        devbox fleet: the host name ${concatStringsSep ", " reserved} is reserved by colmena (meta, defaults, network name the hive's own attributes).
        Rename the host in users.nix and run `devbox-ctl generate`.
      ''
    else
      {
        inherit meta defaults;
      }
      // builtins.mapAttrs (
        name: modules:
        modules
        ++ [
          {
            deployment = builtins.mapAttrs (_: lib.mkDefault) (reachTarget declared.${name}.reach);
          }
        ]
      ) nodes;

  # The fields a fleet adds to /etc/devbox/config.json (docs/host-config.md); none on a single
  # host, whose config.json stays as it was. A member holds no config repository: its
  # declaration is its deployed slice manifest.
  # The programs a fleet's control host runs besides devbox's own: deployCommand's and
  # sshCommand's (services.devbox.fleet.packages). Both units that run devbox-ctl's fleet
  # verbs get them: devbox-privileged and the daily devbox-cleanup.service.
  controlPackages = cfg: lib.optionals (cfg.source.fleet && cfg.fleet.control) cfg.fleet.packages;

  fleetConfig =
    {
      fleet,
      control,
      hostName,
      deployCommand,
      sshCommand,
      remoteCommand,
    }:
    optionalAttrs fleet (
      {
        role = if control then "control" else "member";
        inherit
          hostName
          deployCommand
          sshCommand
          remoteCommand
          ;
      }
      // optionalAttrs (!control) { configRepo = null; }
    );

  # The manifest as the modules read it. A manifest of another schema version is refused by an
  # assertion of orchestrator.nix; reading none of its fields until then keeps that assertion
  # the error the admin sees.
  fromManifest =
    manifest:
    let
      supported = (manifest.version or null) == 1;
      files = if supported then manifest.files else { };
      users = if supported then manifest.users else { };
    in
    {
      inherit supported users;
      # users.nix containers.nixDaemon (default true; a manifest older than the setting: true).
      nixDaemon = supported && (manifest.settings.nixDaemon or true);
      # users/<UID>/… (Quadlet units of one user) and system/… (the cleanup service and timer)
      userUnitFiles = filterAttrs (_: file: file.uid != null) files;
      systemUnitFiles = filterAttrs (_: file: file.uid == null) files;
      usersWithContainers = filterAttrs (_: user: user.containers != [ ]) users;
    };

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

  sudoRule = users: privilegedCommand: {
    users = attrNames users;
    runAs = "root";
    # A command without arguments lets the caller pass any: devbox-privileged takes the verb
    # and checks the caller (SUDO_UID, which sudo sets) against users.nix itself. NOSETENV:
    # the caller may not set variables for it (`sudo VAR=… cmd`, `sudo -E`).
    commands = [
      {
        command = privilegedCommand;
        options = [
          "NOPASSWD"
          "NOSETENV"
        ];
      }
    ];
  };
  # sudo (sudoers(5)): for this command only, a fresh environment with nothing kept from the
  # caller's (NixOS keeps variables for root and wheel through user Defaults, which command
  # Defaults override), root's HOME and a fixed PATH. sudo-rs has no command Defaults; it
  # always resets the environment, and devbox-privileged does not depend on either.
  sudoDefaults = privilegedCommand: privilegedPath: ''
    Defaults!${privilegedCommand} env_reset, !env_keep, !env_check, always_set_home, secure_path="${privilegedPath}"
  '';

  # What users.users.<name> must say for a user of users.nix, each with its fix.
  userAssertions =
    declaredUsers: name: user:
    let
      declared = declaredUsers.${name};
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

  # Explicit ranges of users devbox does not manage must not overlap a devbox range: one line
  # per overlap, none when all is well.
  overlaps =
    users: declaredUsers:
    let
      devboxRanges = mapAttrsToList (name: user: {
        inherit name;
        start = user.subUidRange.start;
        end = user.subUidRange.start + user.subUidRange.count;
      }) users;
      others = filterAttrs (name: _: !(users ? ${name})) declaredUsers;
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

  # A string option holding a path (the module checks absolute/relative in its assertions).
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
}
