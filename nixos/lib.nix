# What the orchestrator module (orchestrator.nix) and its cleanup (orchestrator-cleanup.nix)
# read from the manifest, and the pieces of the module that are plain functions of it: the
# subordinate id ranges, the sudo rule, the per-user assertions and the check that other
# users' ranges stay clear of devbox's. Imported by both modules; no options, no config.
{ lib }:
let
  inherit (lib)
    attrNames
    concatLists
    concatMap
    filterAttrs
    hasPrefix
    mapAttrsToList
    mkOption
    types
    ;
in
rec {
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
