#!/usr/bin/env bash
# What `nixos-rebuild switch` does on a host with services.devbox, for the Debian 13 guest of
# the host test: nixos/orchestrator.nix and nixos/orchestrator-cleanup.nix, step by step, on a
# system that is not NixOS. A NixOS build is out of reach here; this script is where the test
# stands in for it, and it follows the module's lines so that the units, files and commands
# are the ones the module gives.
#
# usage: activate.sh OPTIONS.json GENERATED_DIR
#   OPTIONS.json  the host's services.devbox options and the store paths the module would
#                 compute (package, privileged, podman, image, loadImage, ...), written by the
#                 test's stand-in for the NixOS build (guest/scenario.py, install step)
#   GENERATED_DIR the generated tree (services.devbox.generatedDir)
#
# Each step names the module option it mirrors; tests/system/test_activation_steps.py checks
# that the options the module's `config` sets and the "mirrors:" lines below are the same
# list, so a module change without a change here fails the fast suite.
#
# The switch itself (switch-to-configuration): unit files are written, systemd reloaded, each
# user's manager re-executed (Quadlet reruns), then units whose file changed are restarted
# (X-Restart-Triggers, as NixOS's restartTriggers put the trigger into the unit file) and new
# ones started; removed units are stopped first. devbox-cleanup.service is not restarted
# (restartIfChanged = false).
set -euo pipefail

options=$1
generated=$2
opt() { jq -r "$1" "$options"; }
say() { printf '%s activate: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
units_dir=/etc/systemd/system
state=/var/lib/devbox-activation
mkdir -p "$state"

# The tree this host installs (nixos/lib.nix, source): the generated tree of a single host, or
# in a fleet (manifest.json declares `fleet`) the slice hosts/<hostName>/, whose manifest must
# have the SHA-256 the fleet index gives it. The slice is shaped like a single host's tree.
fleet=false
if jq -e '.fleet' "$generated/manifest.json" >/dev/null; then
	fleet=true
	host_name=$(opt '.hostName // empty')
	slice=$(jq -r --arg h "$host_name" '.fleet.hosts[$h].slice // empty' "$generated/manifest.json")
	[[ -n $slice ]] || {
		echo "services.devbox.hostName is \"$host_name\", which is not a host of this fleet" >&2
		exit 1
	}
	expected=$(jq -r --arg h "$host_name" '.fleet.hosts[$h].manifestSha256' "$generated/manifest.json")
	actual=$(sha256sum "$generated/$slice/manifest.json" | cut -d' ' -f1)
	[[ $actual == "$expected" ]] || {
		echo "services.devbox.generatedDir: $slice/manifest.json has SHA-256 $actual, but the fleet index gives $expected" >&2
		exit 1
	}
	generated=$generated/$slice
fi
manifest=$generated/manifest.json
# A fleet's control host runs the deploy tool and ssh (lib.nix, controlPackages): on
# devbox-privileged's PATH (the options' privilegedPath has them) and on the cleanup's.
control_path=
if [[ $fleet == true && $(opt '.fleetControl // false') == true ]]; then
	control_path=$(opt '[.fleetPackages[] + "/bin"] | join(":")'):
fi

# mirrors: assertions (orchestrator.nix, config.assertions: manifest version 1, absolute
# stateDir/configRepo, a sudo, ranges that do not overlap)
if [[ $(jq -r '.version' "$manifest") != 1 ]]; then
	echo "services.devbox.generatedDir: manifest.json has version $(jq -r .version "$manifest"), and this module reads version 1." >&2
	exit 1
fi
for path in "$(opt .stateDir)" "$(opt .configRepo)"; do
	[[ $path == /* ]] || {
		echo "services.devbox: $path must be an absolute path" >&2
		exit 1
	}
done

package=$(opt .package)
podman=$(opt .podman)
image=$(opt .image)
reference=$(jq -r '.settings.image' "$manifest")
privileged_command=$(opt .privileged)/bin/devbox-privileged
state_dir=$(opt .stateDir)
mapfile -t users < <(jq -r '.users | keys[]' "$manifest")
# users.nix containers.nixDaemon: the containers build through this host's nix-daemon.
nix_daemon=$(jq -r '.settings.nixDaemon // false' "$manifest")
nix_roots=/nix/var/nix/gcroots/devbox
# loadedImage (orchestrator.nix): what each owner loads. With nixDaemon the containers mount the
# host's store, and the owners load the image's hostStoreImage (links into the store) if it has one.
loaded_image=$image
if [[ $nix_daemon == true && -n $(opt '.hostStoreImage // empty') ]]; then
	loaded_image=$(opt .hostStoreImage)
fi

# mirrors: virtualisation.podman.enable (orchestrator.nix: podman, its Quadlet generator and
# containers' policy are in the guest's base image, at the store paths setup-base.sh made)
[[ -x $podman/bin/podman ]] || {
	echo "podman is missing at $podman" >&2
	exit 1
}

# mirrors: users.users (orchestrator.nix: isNormalUser, uid, linger, autoSubUidGidRange =
# false, subUidRanges and subGidRanges = [ uid × 65536, 65536 ])
for user in "${users[@]}"; do
	uid=$(jq -r --arg u "$user" '.users[$u].uid' "$manifest")
	start=$(jq -r --arg u "$user" '.users[$u].subUidRange.start' "$manifest")
	count=$(jq -r --arg u "$user" '.users[$u].subUidRange.count' "$manifest")
	if ! id -u "$user" >/dev/null 2>&1; then
		# isNormalUser as NixOS gives it: the primary group users (the group rootless podman
		# maps to the containers' gid 0, which the :U mount of the user's GC roots needs), a
		# home of mode 0700.
		useradd --create-home --uid "$uid" --gid users --shell /bin/bash "$user"
		chmod 0700 "$(getent passwd "$user" | cut -d: -f6)"
		say "created user $user (uid $uid)"
	elif [[ $(id -u "$user") != "$uid" ]]; then
		echo "users.users.$user.uid is $(id -u "$user"), but users.nix gives $user uid $uid" >&2
		exit 1
	fi
	# NixOS writes /etc/subuid and /etc/subgid whole; here only devbox users' lines change.
	for file in /etc/subuid /etc/subgid; do
		touch "$file"
		grep -v "^$user:" "$file" >"$file.new" || true
		echo "$user:$start:$count" >>"$file.new"
		mv "$file.new" "$file"
	done
	# linger = true: the user's manager runs from boot (NixOS: /var/lib/systemd/linger/<user>).
	loginctl enable-linger "$user"
done

# mirrors: environment.systemPackages (orchestrator.nix: devbox-ctl in the system profile)
ln -sfn "$package/bin/devbox-ctl" /nix/var/nix/profiles/system/sw/bin/devbox-ctl

# mirrors: environment.etc (orchestrator.nix: users/<UID>/<file> →
# /etc/containers/systemd/users/<UID>/<file>, devbox/manifest.json, devbox/config.json)
# NixOS's /etc is a set of links it owns: files of a previous generation not in this one go.
previous_etc=$state/etc-files
new_etc=$state/etc-files.new
: >"$new_etc"
while read -r path; do
	target=/etc/containers/systemd/$path
	install -D -m 0644 "$generated/$path" "$target"
	echo "$target" >>"$new_etc"
done < <(jq -r '.files | to_entries[] | select(.value.uid != null) | .key' "$manifest")
if [[ -f $previous_etc ]]; then
	while read -r old; do
		grep -qxF "$old" "$new_etc" || rm -f "$old"
	done <"$previous_etc"
fi
mv "$new_etc" "$previous_etc"
install -D -m 0644 "$manifest" /etc/devbox/manifest.json
# In a fleet, also the host's role, name and the argv templates (lib.nix, fleetConfig).
jq -n --slurpfile o "$options" --arg privileged "$privileged_command" \
	--arg podman "$podman/bin/podman" --argjson fleet "$fleet" '$o[0] | {
	version: 1, configRepo, usersFile, containersFile, rebuildCommand, opTokenFile, opVault,
	tailscaleApiKeyFile, tailnet, stateDir, generatedDir: .generatedDirInRepo,
	privilegedCommand: $privileged, podman: $podman,
	privilegedEnvironment: { PATH: .privilegedPath } }
	+ if $fleet then {
		role: (if .fleetControl then "control" else "member" end), hostName,
		deployCommand, sshCommand, remoteCommand }
		+ (if .fleetControl then {} else { configRepo: null } end)
	else {} end' >/etc/devbox/config.json.new
mv /etc/devbox/config.json.new /etc/devbox/config.json

# mirrors: systemd.tmpfiles.rules (orchestrator.nix: d stateDir 0700 root root; with nixDaemon
# d /nix/var/nix/gcroots/devbox 0755 root root and d …/devbox/<user> 0755 <user> users for each
# user), in NixOS's file for them, applied as its activation does and again at every boot
{
	echo "d $state_dir 0700 root root - -"
	if [[ $nix_daemon == true ]]; then
		echo "d $nix_roots 0755 root root - -"
		for user in "${users[@]}"; do
			echo "d $nix_roots/$user 0755 $user users - -"
		done
	fi
} >/etc/tmpfiles.d/00-nixos.conf
systemd-tmpfiles --create /etc/tmpfiles.d/00-nixos.conf

# Unit files: written, compared with the previous generation's, then acted on after the
# reload (switch-to-configuration).
changed=() added=() removed=()
write_unit() { # NAME CONTENT
	local name=$1 content=$2 path=$units_dir/$1
	if [[ ! -f $path ]]; then
		added+=("$name")
	elif [[ $(<"$path") != "$content" ]]; then
		changed+=("$name")
	fi
	printf '%s\n' "$content" >"$path.new"
	mv "$path.new" "$path"
	echo "$name" >>"$state/units.new"
	# NixOS turns a unit's wantedBy into links in <target>.wants/ (its [Install] section is not
	# read): so that it starts at boot. Done here for each WantedBy= the unit is written with.
	local target
	while read -r target; do
		mkdir -p "$units_dir/$target.wants"
		ln -sfn "$path" "$units_dir/$target.wants/$name"
	done < <(sed -n 's/^WantedBy=//p' <<<"$content")
}
: >"$state/units.new"

# mirrors: systemd.services (orchestrator.nix: devbox-image-<user> for users with containers,
# imageService; devbox-apply-<user> for every user, applyService)
# Their attributes, one by one (wants = linger-users.service is NixOS's unit that applies
# users.users.<name>.linger; here loginctl enable-linger above did that):
# imageService: description wantedBy requires wants after environment serviceConfig
# applyService: description wantedBy requires wants after restartTriggers path serviceConfig
for user in "${users[@]}"; do
	uid=$(jq -r --arg u "$user" '.users[$u].uid' "$manifest")
	home=$(getent passwd "$user" | cut -d: -f6)
	has_containers=$(jq -r --arg u "$user" '.users[$u].containers != []' "$manifest")
	if [[ $has_containers == true ]]; then
		write_unit "devbox-image-$user.service" "[Unit]
Description=devbox: load the dev-container image into $user's rootless storage
Requires=user@$uid.service
After=user@$uid.service

[Service]
Type=oneshot
RemainAfterExit=true
User=$user
Environment=HOME=$home
Environment=XDG_RUNTIME_DIR=/run/user/$uid
ExecStart=$(opt .loadImage)/bin/devbox-load-image $loaded_image $reference
TimeoutStartSec=15min

[Install]
WantedBy=multi-user.target"
	fi
	triggers=$(jq -r --arg u "$user" '.users[$u] | "\(.unitsSha256) \(.statesSha256)"' "$manifest")
	image_args=""
	if [[ $(opt .restartOnImageChange) == true ]]; then
		triggers="$triggers $loaded_image"
		image_args=" --image $loaded_image --restart-on-image-change"
	fi
	after="user@$uid.service"
	wants=""
	if [[ $has_containers == true ]]; then
		after="$after devbox-image-$user.service"
		wants="Wants=devbox-image-$user.service"
	fi
	# NixOS's default service PATH (coreutils, findutils, grep, sed, systemd: /usr/bin here)
	# plus the module's path = [ podman ].
	write_unit "devbox-apply-$user.service" "[Unit]
Description=devbox: start, restart and stop $user's dev containers as declared
Requires=user@$uid.service
$wants
After=$after
X-Restart-Triggers=$triggers

[Service]
Type=oneshot
RemainAfterExit=true
Environment=PATH=$podman/bin:/usr/bin
ExecStart=$package/bin/devbox-ctl apply --manifest /etc/devbox/manifest.json --user $user --state-dir $state_dir$image_args
Restart=on-failure
RestartSec=30s

[Install]
WantedBy=multi-user.target"
done

# (systemd.services, with nixDaemon: nix-daemon.serviceConfig.Slice = "devbox-nix.slice", as a
# drop-in for Debian's unit; the daemon restarts when it changed, as NixOS restarts a changed unit)
nix_daemon_changed=false
nix_dropin=$units_dir/nix-daemon.service.d/devbox.conf
nix_dropin_text=
[[ $nix_daemon == true ]] && nix_dropin_text=$'[Service]\nSlice=devbox-nix.slice'
if [[ $(cat "$nix_dropin" 2>/dev/null) != "$nix_dropin_text" ]]; then
	nix_daemon_changed=true
	if [[ -n $nix_dropin_text ]]; then
		mkdir -p "${nix_dropin%/*}"
		printf '%s\n' "$nix_dropin_text" >"$nix_dropin"
	else
		rm -f "$nix_dropin"
	fi
fi

# mirrors: security.sudo-rs.extraRules (orchestrator.nix: the same rule when sudo-rs is the
# sudo; this guest has sudo)
# mirrors: security.sudo.extraRules (orchestrator.nix: sudoRule, every user in users.nix may run
# exactly privilegedCommand as root, NOPASSWD:NOSETENV)
# mirrors: security.sudo.extraConfig (orchestrator.nix: sudoDefaults, for that command only a
# fresh environment with nothing of the caller's kept, root's HOME, secure_path = privilegedPath)
{
	echo "# services.devbox: the one privileged command"
	for user in "${users[@]}"; do
		echo "$user ALL=(root) NOPASSWD:NOSETENV: $privileged_command"
	done
	echo "Defaults!$privileged_command env_reset, !env_keep, !env_check, always_set_home, secure_path=\"$(opt .privilegedPath)\""
} >/etc/sudoers.d/devbox.new
chmod 0440 /etc/sudoers.d/devbox.new
visudo -cqf /etc/sudoers.d/devbox.new
mv /etc/sudoers.d/devbox.new /etc/sudoers.d/devbox

# mirrors: systemd.packages (orchestrator-cleanup.nix: the generated devbox-cleanup.service and
# .timer installed as they are)
while read -r path; do
	write_unit "$(basename "$path")" "$(<"$generated/$path")"
done < <(jq -r '.files | to_entries[] | select(.value.uid == null) | .key' "$manifest")

# mirrors: systemd.timers.devbox-cleanup (orchestrator-cleanup.nix: wantedBy timers.target,
# OnCalendar overridden by services.devbox.cleanup.schedule)
mkdir -p "$units_dir/devbox-cleanup.timer.d" "$units_dir/timers.target.wants"
schedule=$(opt '.cleanupSchedule // empty')
if [[ -n $schedule ]]; then
	printf '[Timer]\nOnCalendar=\nOnCalendar=%s\n' "$schedule" >"$units_dir/devbox-cleanup.timer.d/overrides.conf"
else
	rm -f "$units_dir/devbox-cleanup.timer.d/overrides.conf"
fi
ln -sfn "$units_dir/devbox-cleanup.timer" "$units_dir/timers.target.wants/devbox-cleanup.timer"

# mirrors: systemd.services.devbox-cleanup (orchestrator-cleanup.nix: restartIfChanged =
# false, path, XDG_CACHE_HOME, CacheDirectory and the hardening)
mkdir -p "$units_dir/devbox-cleanup.service.d"
read_write="$state_dir -$(opt .configRepo) /nix/var/nix /run/user"
for user in "${users[@]}"; do
	read_write="$read_write -$(getent passwd "$user" | cut -d: -f6)"
done
cat >"$units_dir/devbox-cleanup.service.d/overrides.conf" <<DROPIN
[Service]
Environment=PATH=$package/bin:$podman/bin:$(opt .nixPackage)/bin:$(opt .nixosRebuild)/bin:$(opt .git)/bin:/usr/bin:/run/wrappers/bin${control_path:+:${control_path%:}}
Environment=XDG_CACHE_HOME=/var/cache/devbox
CacheDirectory=devbox
ProtectSystem=strict
ProtectHome=false
ReadWritePaths=$read_write
PrivateTmp=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectClock=true
ProtectHostname=true
LockPersonality=true
RestrictRealtime=true
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
DROPIN

# mirrors: nix.settings (orchestrator.nix, with nixDaemon: sandbox, max-jobs, cores, min-free,
# max-free). /etc/nix/nix.conf as NixOS writes it, with NixOS's defaults for what the module does
# not set (build-users-group nixbld, allowed-users *, trusted-users root; max-jobs auto and cores
# 0 without nixDaemon); no substituters: no binary cache is reachable from the guest, and an
# unreachable one would make every build wait for it. The daemon restarts when it changed
# (NixOS: nix-daemon's restartTriggers).
nix_conf="# /etc/nix/nix.conf, as NixOS writes it from nix.settings (tests/system/guest/activate.sh)
allowed-users = *
build-users-group = nixbld
require-sigs = true
sandbox = true
sandbox-fallback = false
substituters =
trusted-users = root"
if [[ $nix_daemon == true ]]; then
	nix_conf+="
max-jobs = $(opt .nix.maxJobs)
cores = $(opt .nix.cores)
min-free = $(opt .nix.minFree)
max-free = $(opt .nix.maxFree)"
else
	nix_conf+="
max-jobs = auto
cores = 0"
fi
if [[ $(cat /etc/nix/nix.conf 2>/dev/null) != "$nix_conf" ]]; then
	printf '%s\n' "$nix_conf" >/etc/nix/nix.conf.new
	mv /etc/nix/nix.conf.new /etc/nix/nix.conf
	nix_daemon_changed=true
fi

# mirrors: nix.gc (orchestrator.nix, with nixDaemon: automatic, dates = services.devbox.nix.gcDates)
# NixOS's nix-gc.service (nix-collect-garbage with nix.gc.options, empty by default) and its
# timer (Persistent, no randomized delay)
if [[ $nix_daemon == true ]]; then
	write_unit nix-gc.service "[Unit]
Description=Nix Garbage Collector

[Service]
Type=oneshot
ExecStart=/usr/bin/nix-collect-garbage"
	write_unit nix-gc.timer "[Unit]
Description=Nix Garbage Collector (timer)

[Timer]
OnCalendar=$(opt .nix.gcDates)
Persistent=true
RandomizedDelaySec=0

[Install]
WantedBy=timers.target"
	ln -sfn "$units_dir/nix-gc.timer" "$units_dir/timers.target.wants/nix-gc.timer"
else
	rm -f "$units_dir/timers.target.wants/nix-gc.timer"
fi

# mirrors: systemd.slices.devbox-nix (orchestrator.nix, with nixDaemon: MemoryMax and CPUQuota
# from services.devbox.nix; nix-daemon and every build it runs live in it)
if [[ $nix_daemon == true ]]; then
	write_unit devbox-nix.slice "[Unit]
Description=nix-daemon and the builds of devbox containers

[Slice]
MemoryMax=$(opt .nix.memoryMax)
CPUQuota=$(opt .nix.cpuQuota)"
fi

# mirrors: system.extraDependencies (orchestrator.nix, with nixDaemon: the image's
# storeContents, which the containers run from the host's store). The NixOS build's stand-in
# made them valid and rooted them as a system's paths (guest/scenario.py, keep); a NixOS build
# without them would fail, and so does this.
if [[ $nix_daemon == true ]]; then
	while read -r path; do
		/usr/bin/nix-store --check-validity "$path" || {
			echo "system.extraDependencies: $path is not a valid store path" >&2
			exit 1
		}
	done < <(opt '.imageStoreContents[]?')
fi

# mirrors: warnings (orchestrator.nix: with nixDaemon, an image without hostStoreImage is
# loaded whole into every owner's storage)
if [[ $nix_daemon == true && $loaded_image == "$image" ]]; then
	say "warning: services.devbox.image has no hostStoreImage: every owner loads the whole image"
fi

# Units of the previous generation that are gone: stopped and removed.
if [[ -f $state/units ]]; then
	while read -r old; do
		if ! grep -qxF "$old" "$state/units.new"; then
			removed+=("$old")
		fi
	done <"$state/units"
fi
mv "$state/units.new" "$state/units"

# --- switch-to-configuration -------------------------------------------------------------
if ((${#removed[@]})); then
	say "stopping removed units: ${removed[*]}"
	systemctl stop "${removed[@]}" || true
	for unit in "${removed[@]}"; do rm -f "$units_dir/$unit" "$units_dir"/*.wants/"$unit"; done
fi
systemctl daemon-reload
# Lingering users' managers re-execute, so Quadlet regenerates from the new files.
for user in "${users[@]}"; do
	uid=$(id -u "$user")
	if systemctl is-active --quiet "user@$uid.service"; then
		timeout 300 systemctl --user --machine="$user@" daemon-reexec
	else
		timeout 300 systemctl start "user@$uid.service"
	fi
done
systemctl start timers.target devbox-cleanup.timer
restart=() start=()
# The daemon in its slice with its settings (its builds run in its cgroup).
if [[ $nix_daemon_changed == true ]] && systemctl is-active --quiet nix-daemon.service; then
	say "restarting nix-daemon.service"
	systemctl restart nix-daemon.service
fi
for unit in "${changed[@]}"; do
	case $unit in
	# A changed slice takes its new limits at the reload; restarting it would stop its units.
	devbox-cleanup.service | nix-gc.service | *.timer | *.slice) ;;
	*) systemctl is-active --quiet "$unit" && restart+=("$unit") || start+=("$unit") ;;
	esac
done
for unit in "${added[@]}"; do
	case $unit in
	devbox-cleanup.service | nix-gc.service) ;;
	*.timer) systemctl restart "$unit" ;;
	*) start+=("$unit") ;;
	esac
done
status=0
if ((${#restart[@]})); then
	say "restarting ${restart[*]}"
	timeout 1200 systemctl restart "${restart[@]}" || status=$?
fi
if ((${#start[@]})); then
	say "starting ${start[*]}"
	timeout 1200 systemctl start "${start[@]}" || status=$?
fi
if ((status)); then
	say "warning: a unit failed to (re)start (status $status)"
	systemctl --no-pager --failed >&2 || true
fi
exit "$status"
