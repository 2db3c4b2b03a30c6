# The derivations of the host test's Nix steps (step 9 of guest/scenario.py), built inside the dev
# containers through the host's nix-daemon by guest/nix_client.py. There is no nixpkgs here, so
# builtins only: the builders are the daemon's sandbox shell /bin/sh (Debian's bash-static) with
# bash's builtins, and the image's static bash and busybox, which the client adds to the store
# (`tools`: bin/bash and bin/busybox): busybox for mkdir and chmod, bash as a builder named bash,
# which `nix develop` requires.
#
# nonce: new for every run of the test, so that the first build of each really builds.
{ nonce, tools }:
let
  system = builtins.currentSystem;
  toolbox = builtins.path {
    path = tools;
    name = "devbox-test-tools";
  };
in
{
  # Built by alice with its link under her GC roots, which the host's GC keeps; built again by
  # bob, who gets the same output without a build. Its program says when it was built.
  kept = derivation {
    name = "devbox-test-kept";
    inherit system nonce;
    builder = "/bin/sh";
    args = [
      "-c"
      ''
        ${toolbox}/bin/busybox mkdir -p $out/bin
        printf '#!/bin/sh\necho "devbox-test-kept %s, built at %s"\n' "$nonce" "$EPOCHREALTIME" >$out/bin/devbox-test-kept
        ${toolbox}/bin/busybox chmod 0555 $out/bin/devbox-test-kept
      ''
    ];
  };

  # Built by alice with only `result` in her home (the volume) linking to it: the daemon's root
  # for that link names a path the host does not have, so the host's GC takes it.
  scratch = derivation {
    name = "devbox-test-scratch";
    inherit system nonce;
    builder = "/bin/sh";
    args = [
      "-c"
      "echo \"devbox-test-scratch $nonce\" >$out"
    ];
  };

  # What a build can see and where it runs: its user ids, its cgroup (the daemon's slice), and
  # which of the host's places exist for it (none should). Built with `--option sandbox false`
  # and `--option build-users-group ''` from an untrusted client, which the daemon ignores.
  probe = derivation {
    name = "devbox-test-probe";
    inherit system nonce;
    builder = "/bin/sh";
    args = [
      "-c"
      ''
        {
          echo "uid $UID"
          echo "uid_map $(< /proc/self/uid_map)"
          echo "cgroup $(< /proc/self/cgroup)"
          for place in /home /root /etc/shadow /var/lib/devbox /nix/var/nix /nix/var/nix/gcroots \
            /nix/var/nix/db /nix/var/nix/daemon-socket /run/user /home/alice /home/bob \
            /home/bob/.local/share/containers /usr /sys/fs/cgroup; do
            if [ -e "$place" ]; then echo "reached $place"; fi
          done
          if read -r line 2>/dev/null </etc/shadow; then echo "read /etc/shadow"; fi
          for entry in /nix/store/*; do echo "store $entry"; done
        } >$out
      ''
    ];
  };

  # For `nix develop`: a builder named bash (nix develop refuses any other) and a variable the
  # development shell must have.
  devenv = derivation {
    name = "devbox-test-devenv";
    inherit system nonce;
    builder = "${toolbox}/bin/bash";
    args = [
      "-c"
      "echo \"$DEVBOX_TEST_MARKER\" >$out"
    ];
    outputs = [ "out" ];
    DEVBOX_TEST_MARKER = "develop-${nonce}";
  };
}
