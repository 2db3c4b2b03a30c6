# shellcheck shell=bash
# /etc/bashrc of the dev container: interactive shells that are not login
# shells (a terminal in code-server, `bash` typed in a session) get the same
# environment as login shells, and a prompt that names the container.

if [ -z "${DEVBOX_PROFILE_DONE:-}" ]; then
	DEVBOX_PROFILE_DONE=1
	export DEVBOX_PROFILE_DONE
	# shellcheck source=/dev/null
	[ -r /etc/profile ] && . /etc/profile
fi

if [ -n "${PS1:-}" ]; then
	PS1='\u@${CONTAINER_NAME:-\h}:\w\$ '
fi
