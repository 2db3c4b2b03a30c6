#!/usr/bin/env bash
# Runs once inside the freshly debootstrapped guest (chroot) while the cached base image is
# built (tests/system/build-base.sh). It turns a Debian 13 system into a stand-in for the
# NixOS host where that matters to devbox:
#   - podman, its Quadlet generator and git live in /nix/store/<hash>-<name>/ and are reached
#     through the system profile /run/current-system/sw/bin (a link made at boot, as NixOS's
#     activation does), never through systemd's compiled-in search path (/usr/bin): a bare
#     program name handed to `systemd-run --user --machine=USER@` fails here as on NixOS;
#   - login shells get the profile on PATH (NixOS: environment.profiles); system services get
#     only what their unit's PATH says (NixOS: systemd.services.<name>.path);
#   - sudo keeps the caller's PATH (NixOS sets no secure_path), so the privileged wrapper must
#     set its own, as writeShellApplication does;
#   - Quadlet writes the store path of podman into the units (NixOS builds Quadlet with it).
# No devbox user, unit or file: tests/system/guest/activate.sh installs those as a switch would.
set -euo pipefail

store=/nix/store
profile=/nix/var/nix/profiles/system
# Fixed fake store hashes: the base image is cached, and these paths must not move.
podman_out=$store/00000000000000000000000000000001-podman-5.4.2
git_out=$store/00000000000000000000000000000002-git-2.47.3
mkdir -p "$podman_out/bin" "$podman_out/libexec/podman" "$git_out/bin" "$profile/sw/bin"

# dpkg-divert --rename moves the file and keeps later package upgrades from putting it back.
divert() {
	dpkg-divert --local --rename --divert "$2" --add "$1" >/dev/null
}
divert /usr/bin/podman "$podman_out/bin/podman"
divert /usr/libexec/podman/quadlet "$podman_out/libexec/podman/quadlet"
divert /usr/bin/git "$git_out/bin/git"
ln -sfn "$podman_out/bin/podman" "$profile/sw/bin/podman"
ln -sfn "$git_out/bin/git" "$profile/sw/bin/git"

# The generators: Quadlet with the store path of podman (its PODMAN variable; NixOS compiles
# the path in instead). Quadlet tells user from system mode by its program name, which a
# wrapper changes: the user generator passes -user.
for kind in user system; do
	generator=/usr/lib/systemd/$kind-generators/podman-$kind-generator
	flag=""
	[[ $kind == user ]] && flag=" -user"
	rm -f "$generator"
	printf '#!/bin/sh\nPODMAN=%s exec %s%s "$@"\n' "$podman_out/bin/podman" \
		"$podman_out/libexec/podman/quadlet" "$flag" >"$generator"
	chmod 0755 "$generator"
done
# podman's own system units name /usr/bin/podman; none of them is used here.
for unit in podman.service podman.socket podman-auto-update.service podman-auto-update.timer \
	podman-clean-transient.service podman-restart.service podman-kube@.service; do
	systemctl mask "$unit" >/dev/null 2>&1 || true
done

# /run/current-system: made at every boot, as NixOS's activation does.
echo "L+ /run/current-system - - - - $profile" >/etc/tmpfiles.d/nixos-current-system.conf

# Login shells: the system profile last, as NixOS's environment.profiles does.
cat >/etc/profile.d/nixos-profile.sh <<'PROFILE'
PATH="/run/wrappers/bin:/run/current-system/sw/bin:$PATH"
export PATH
PROFILE

# sudo: NixOS sets no secure_path, so sudo keeps the caller's PATH.
sed -i 's/^Defaults[[:space:]]*secure_path/# NixOS sets none: &/' /etc/sudoers

# The host's nix-daemon as NixOS's nix-daemon module sets it up (Debian's nix-setup-systemd
# gives the units): the socket's directory world-searchable, 0755 root root (Debian's is 0770
# root nix-users, which a container's user, a subordinate uid, is not in); no per-user
# ~/.nix-profile or NIX_REMOTE in users' managers (Debian's user-tmpfiles and environment.d
# entries; NixOS has neither). /etc/nix/nix.conf is the module's (guest/activate.sh).
echo 'd /nix/var/nix/daemon-socket 0755 root root - -' >/etc/tmpfiles.d/nix-daemon.conf
install -d -m 0755 -o root -g root /nix/var/nix/daemon-socket
mkdir -p /etc/user-tmpfiles.d /etc/environment.d
ln -sfn /dev/null /etc/user-tmpfiles.d/nix-daemon.conf
ln -sfn /dev/null /etc/environment.d/nix-daemon.conf

# Debian's own sshd on port 22 is not used: the scenario starts one of its own on loopback.
systemctl mask ssh.service ssh.socket >/dev/null 2>&1 || true

# Console and boot: a getty on ttyS0 hangs up other writers; timers that only cost time.
systemctl mask serial-getty@ttyS0.service getty@tty1.service >/dev/null
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer fstrim.timer \
	e2scrub_all.timer e2scrub_reap.service man-db.timer; do
	systemctl mask "$unit" >/dev/null 2>&1 || true
done

# A static address on QEMU's user network, so that network-online.target is reached at once
# (rootless podman's pasta and Quadlet's podman-user-wait-network-online need it).
mkdir -p /etc/systemd/network
cat >/etc/systemd/network/10-qemu.network <<'NET'
[Match]
Name=en* eth*

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
DNS=10.0.2.3
NET
systemctl enable systemd-networkd.service >/dev/null 2>&1
systemctl add-wants multi-user.target network-online.target >/dev/null

echo devbox-host >/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 devbox-host\n' >/etc/hosts
cat >/etc/fstab <<'FSTAB'
/dev/vda / ext4 defaults 0 1
/dev/vdb /mnt/test ext4 defaults,nofail 0 2
FSTAB
mkdir -p /mnt/test

# The test's entry point: a oneshot that runs the scenario from the test disk, logs to the
# console and powers the guest off (tests/system/guest/boot.sh).
cat >/etc/systemd/system/devbox-test.service <<'UNIT'
[Unit]
Description=devbox host test (tests/system)
After=multi-user.target
RequiresMountsFor=/mnt/test

[Service]
Type=oneshot
ExecStart=/bin/bash /mnt/test/guest/boot.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
ExecStopPost=/bin/systemctl --no-block poweroff
UNIT
systemctl enable devbox-test.service >/dev/null 2>&1 || \
	ln -sf /etc/systemd/system/devbox-test.service /etc/systemd/system/multi-user.target.wants/
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sf /etc/systemd/system/devbox-test.service /etc/systemd/system/multi-user.target.wants/devbox-test.service

# Journal kept on disk, so that a failed boot's journal can be read with debugfs.
mkdir -p /var/log/journal
echo 'root:devbox' | chpasswd

# The dev-container image's root file system, from these Debian packages (the devbox source and
# the entrypoint are added at test time by guest/make-image.py).
python3 /tmp/image-rootfs.py /var/lib/devbox-test/image-rootfs.tar
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
