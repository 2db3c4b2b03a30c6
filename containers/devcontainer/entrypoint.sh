#!/usr/bin/env bash
# The dev container's entrypoint. It runs under tini (PID 1) as the user dev
# and supervises every service of the container:
#
#   tailscaled (userspace networking, state on the volume)  essential
#   code-server on 127.0.0.1:8080                            essential
#   syncthing, GUI on 127.0.0.1:8384 (DEVBOX_SYNCTHING=1)    essential when enabled
#   devbox-ctl monitor (the activity record)                 restarted when it dies
#
# The contract with the generated Quadlet unit is docs/container-interface.md;
# what the image does with it is docs/image.md.
#
# Exit codes:
#   0  stopped by SIGTERM/SIGINT (podman stop, systemctl stop)
#   1  an essential service exited; the unit's restart policy takes over
#   2  the unit passed a bad configuration (a required variable is missing)
#   3  the node has no Tailscale state and there is no auth key
#   4  Tailscale could not be brought up
set -euo pipefail

log() { printf 'devbox-entrypoint: %s\n' "$*" >&2; }
# die CODE MESSAGE: report, stop whatever was started (the EXIT trap), exit.
die() {
	local code=$1
	shift
	log "error: $*"
	exit "$code"
}

# --- Configuration --------------------------------------------------------
# The unit's variables (docs/container-interface.md). The DEVBOX_* paths below
# them have image defaults; they exist so that the tests can run this script
# outside the image, not for the unit to set.
CONTAINER_NAME=${CONTAINER_NAME:-}
DEVBOX_TS_TAGS=${DEVBOX_TS_TAGS:-}
DEVBOX_SYNCTHING=${DEVBOX_SYNCTHING:-0}
HOME=${HOME:-/home/dev}
export HOME

authkey_file=${DEVBOX_TS_AUTHKEY_FILE:-/run/secrets/ts-authkey}
ts_socket=${DEVBOX_TS_SOCKET:-/var/run/tailscale/tailscaled.sock}
ts_state_dir=$HOME/.local/share/tailscale
ts_wait_seconds=${DEVBOX_TS_WAIT_SECONDS:-60}
ts_up_timeout=${DEVBOX_TS_UP_TIMEOUT:-120s}
state_dir=$HOME/.local/state/devbox
syncthing_home=$HOME/.config/syncthing
syncthing_folder=$HOME/sync
syncthing_gui=127.0.0.1:8384
code_server_bind=127.0.0.1:8080
zed_server_dir=${DEVBOX_ZED_SERVER_DIR:-}
nix_roots=${DEVBOX_NIX_ROOTS:-/nix/var/nix/gcroots/devbox}
monitor_restart_seconds=${DEVBOX_MONITOR_RESTART_SECONDS:-5}

[[ -n $CONTAINER_NAME ]] || die 2 "CONTAINER_NAME is not set; the generated unit sets it to the container's name"
[[ -n $DEVBOX_TS_TAGS ]] || die 2 "DEVBOX_TS_TAGS is not set; the generated unit sets it to tag:devcontainer,tag:<owner>-container"
case $DEVBOX_SYNCTHING in
0 | 1) ;;
*) die 2 "DEVBOX_SYNCTHING is '$DEVBOX_SYNCTHING'; use 1 or 0" ;;
esac

# Files this script creates for itself (the auth key taken from the
# environment, the Syncthing API header) live in a private directory that is
# removed on exit.
private_dir=$(mktemp -d "${TMPDIR:-/tmp}/devbox-entrypoint.XXXXXX")
chmod 0700 "$private_dir"

# --- The auth key ---------------------------------------------------------
# The key reaches tailscale only as "file:PATH": never in an argv, never in
# the environment of a child, never in the log.
authkey_path=""
if [[ -n ${TS_AUTHKEY:-} ]]; then
	authkey_path=$private_dir/ts-authkey
	(
		umask 077
		printf '%s\n' "$TS_AUTHKEY" >"$authkey_path"
	)
elif [[ -r $authkey_file ]] && grep -q '[^[:space:]]' "$authkey_file"; then
	authkey_path=$authkey_file
fi
unset TS_AUTHKEY

# --- Supervision ----------------------------------------------------------
declare -A service_pid=()
shutting_down=0

stop_services() {
	local name
	for name in "${!service_pid[@]}"; do
		kill -TERM "${service_pid[$name]}" 2>/dev/null || true
	done
	for name in "${!service_pid[@]}"; do
		wait "${service_pid[$name]}" 2>/dev/null || true
	done
	service_pid=()
}

cleanup() {
	stop_services
	rm -rf "$private_dir"
}

on_signal() {
	shutting_down=1
	log "stopping on $1"
	exit 0
}
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGINT' INT
trap cleanup EXIT

# start NAME COMMAND... runs COMMAND in the background as an essential service.
start() {
	local name=$1
	shift
	"$@" &
	service_pid[$name]=$!
	log "started $name (pid ${service_pid[$name]})"
}

# --- Tailscale --------------------------------------------------------------
ts() { tailscale --socket="$ts_socket" "$@"; }

backend_state() {
	ts status --json 2>/dev/null | jq -r '.BackendState // empty' 2>/dev/null || true
}

# wait_for_tailscaled sets ts_state once tailscaled answers with a state.
ts_state=""
wait_for_tailscaled() {
	local waited=0
	while ((waited < ts_wait_seconds)); do
		kill -0 "${service_pid[tailscaled]}" 2>/dev/null || die 4 "tailscaled exited while starting; see its log above"
		ts_state=$(backend_state)
		if [[ -n $ts_state && $ts_state != NoState ]]; then
			return 0
		fi
		sleep 1
		waited=$((waited + 1))
	done
	die 4 "tailscaled did not answer on $ts_socket within ${ts_wait_seconds}s"
}

bring_up_tailscale() {
	mkdir -p "$ts_state_dir" "$(dirname "$ts_socket")"
	chmod 0700 "$ts_state_dir"
	# Userspace networking: no TUN device and no root. tailscaled then forwards
	# tailnet connections to 127.0.0.1, which is how code-server and the
	# Syncthing GUI are reached while listening on loopback only.
	start tailscaled tailscaled --tun=userspace-networking --statedir="$ts_state_dir" --socket="$ts_socket"

	wait_for_tailscaled
	local -a flags=(--ssh --hostname="$CONTAINER_NAME" --accept-dns=false)
	case $ts_state in
	NeedsLogin)
		[[ -n $authkey_path ]] ||
			die 3 "this container has no Tailscale state and no auth key; run devbox-ctl rotate-key $CONTAINER_NAME"
		log "first start: joining the tailnet as $CONTAINER_NAME"
		ts up --auth-key="file:$authkey_path" "${flags[@]}" \
			--advertise-tags="$DEVBOX_TS_TAGS" --timeout="$ts_up_timeout" ||
			die 4 "tailscale up failed"
		;;
	Stopped)
		# Logged in, but someone ran `tailscale down`. `up` with the same flags
		# as the first start needs no key and changes no setting.
		log "restart: node is stopped, bringing it up again"
		ts up "${flags[@]}" --advertise-tags="$DEVBOX_TS_TAGS" --timeout="$ts_up_timeout" ||
			die 4 "tailscale up failed"
		;;
	*)
		# The node kept its identity on the volume. Re-running `up` with other
		# flags than the running ones fails; `set` changes just these.
		log "restart: node state $ts_state, keeping its identity"
		ts set "${flags[@]}" || die 4 "tailscale set failed"
		;;
	esac
	if [[ $authkey_path == "$private_dir"/* ]]; then
		rm -f "$authkey_path"
	fi
}

# --- Zed ------------------------------------------------------------------
# Zed clients look for ~/.zed_server/zed-remote-server-<channel>-<version> and
# upload their own server when the exact version is missing. The home is the
# volume, so the image's server is linked in at every start (an image update
# brings a new one), and links into an old image's store that no longer
# exists are removed. The directory stays writable for Zed's own uploads.
link_zed_server() {
	[[ -n $zed_server_dir && -d $zed_server_dir ]] || return 0
	local zed_dir=$HOME/.zed_server server link
	mkdir -p "$zed_dir"
	for link in "$zed_dir"/*; do
		if [[ -L $link && ! -e $link ]]; then
			rm -f "$link"
		fi
	done
	for server in "$zed_server_dir"/zed-remote-server-*; do
		[[ -e $server ]] || continue
		ln -sfn "$server" "$zed_dir/$(basename "$server")"
	done
}

# --- Nix ------------------------------------------------------------------
# With the host's daemon (NIX_REMOTE, docs/nix-in-containers.md), the unit mounts
# the owner's GC roots directory at the same path as on the host. Links in it are
# roots of the host's GC; links in the home volume are not (the host cannot see
# them). So the default profile of `nix profile` lives there, one directory per
# container: ~/.nix-profile → <roots>/<owner>/<container>/profile, made when the
# home has no ~/.nix-profile of its own (a link the user made is left alone).
link_nix_profile() {
	local owner_roots=$nix_roots/${DEVBOX_OWNER:-} own
	[[ -n ${NIX_REMOTE:-} && -n ${DEVBOX_OWNER:-} && -d $owner_roots && -w $owner_roots ]] || return 0
	own=$owner_roots/$CONTAINER_NAME
	mkdir -p "$own" || {
		log "nix: cannot create $own; nix profile generations will not be GC roots"
		return 0
	}
	if [[ ! -e $HOME/.nix-profile && ! -L $HOME/.nix-profile ]]; then
		ln -s "$own/profile" "$HOME/.nix-profile"
		log "nix: ~/.nix-profile is $own/profile, kept by the host's GC"
	fi
}

# --- code-server ------------------------------------------------------------
start_code_server() {
	# --auth none: the only way in is the tailnet, whose ACLs already decide
	# who may reach this container (docs/image.md).
	start code-server code-server \
		--bind-addr "$code_server_bind" \
		--auth none \
		--disable-telemetry \
		--disable-update-check
}

# --- Syncthing --------------------------------------------------------------
syncthing_password_file=$syncthing_home/gui-password

first_start_syncthing() {
	mkdir -p "$syncthing_home" "$syncthing_folder"
	chmod 0700 "$syncthing_home"
	(
		umask 077
		head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$syncthing_password_file"
	)
	chmod 0600 "$syncthing_password_file"
	# The password goes in on standard input ("-"), not in the argv. Syncthing 2
	# makes no default folder (and has no --no-default-folder); the sync folder
	# is added through the REST API below.
	syncthing generate --home="$syncthing_home" \
		--gui-user=dev --gui-password=- <"$syncthing_password_file" >/dev/null
	log "syncthing: GUI user dev, password in $syncthing_password_file"
}

# Syncthing's GUI rejects a Host header other than localhost while it listens
# on loopback (its DNS-rebinding guard) and has no list of allowed names, so
# the host check is switched off for the tailnet name; the GUI password and
# the tailnet ACLs guard it instead. The sync folder is created on the same
# first start. Both go through the REST API with a per-start API key that is
# only in Syncthing's environment and in a private header file.
configure_syncthing() {
	local header=$1 base=http://$syncthing_gui waited=0
	until curl -fsS -o /dev/null -H @"$header" "$base/rest/system/ping"; do
		sleep 1
		waited=$((waited + 1))
		((waited < 60)) || {
			log "syncthing: API did not answer; host check and folder left unconfigured"
			return 1
		}
	done
	curl -fsS -o /dev/null -H @"$header" -H 'Content-Type: application/json' -X PATCH \
		--data '{"insecureSkipHostcheck": true}' "$base/rest/config/gui" &&
		curl -fsS -o /dev/null -H @"$header" -H 'Content-Type: application/json' -X PUT \
			--data "{\"id\": \"sync\", \"label\": \"sync\", \"path\": \"$syncthing_folder\"}" \
			"$base/rest/config/folders/sync" &&
		touch "$syncthing_home/.devbox-configured" &&
		log "syncthing: configured the GUI host check and the folder $syncthing_folder"
}

start_syncthing() {
	[[ -f $syncthing_home/config.xml ]] || first_start_syncthing
	local api_key header=$private_dir/syncthing-api-header
	api_key=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
	(
		umask 077
		printf 'X-API-Key: %s\n' "$api_key" >"$header"
	)
	# Settings through Syncthing's environment variables: the GUI address
	# overrides the configuration's, so it stays on loopback whatever the
	# GUI's settings page is told; no browser, no self-upgrade.
	STGUIADDRESS=$syncthing_gui STGUIAPIKEY=$api_key STNOBROWSER=1 STNOUPGRADE=1 \
		start syncthing syncthing serve --home="$syncthing_home"
	if [[ ! -f $syncthing_home/.devbox-configured ]]; then
		configure_syncthing "$header" || true
	fi
}

# --- The activity monitor ---------------------------------------------------
# Not essential: a broken monitor must not take the container down, so it is
# restarted after a pause. The host tells a quiet container from a dead
# monitor by monitor.updatedAt (docs/container-interface.md).
stop_monitor() {
	# jobs -p also lists a monitor forked an instant before the signal.
	local -a children
	mapfile -t children <<<"$(jobs -p)"
	if ((${#children[@]} > 0)); then
		kill -TERM "${children[@]}" 2>/dev/null || true
	fi
	wait || true
	exit 0
}

supervise_monitor() {
	trap stop_monitor TERM
	local status
	while true; do
		devbox-ctl monitor &
		status=0
		wait $! || status=$?
		log "devbox-ctl monitor exited with status $status; restarting in ${monitor_restart_seconds}s"
		sleep "$monitor_restart_seconds" &
		wait $! || true
	done
}

# --- Main -------------------------------------------------------------------
mkdir -p "$state_dir"
bring_up_tailscale
link_zed_server
link_nix_profile
start_code_server
if [[ $DEVBOX_SYNCTHING == 1 ]]; then
	start_syncthing
fi
supervise_monitor &
monitor_pid=$!

essential=("${service_pid[@]}")
service_pid[monitor]=$monitor_pid
log "container $CONTAINER_NAME is up"

finished=""
status=0
wait -n -p finished "${essential[@]}" || status=$?
if ((shutting_down == 0)); then
	for name in "${!service_pid[@]}"; do
		if [[ ${service_pid[$name]} == "$finished" ]]; then
			unset "service_pid[$name]"
			log "error: $name exited with status $status; stopping the container"
		fi
	done
	stop_services
	exit 1
fi
