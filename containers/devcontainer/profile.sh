# shellcheck shell=sh
# /etc/profile of the dev container. Every login shell reads it: the sessions
# Tailscale SSH opens and the commands Zed's remote server runs get a clean,
# complete environment from here rather than from whatever tailscaled had.
# The placeholders (the names between at-signs) are filled in by default.nix.

# /etc/bashrc reads this file for shells that are not login shells, once.
DEVBOX_PROFILE_DONE=1
export DEVBOX_PROFILE_DONE

# Everything the image installs is linked into /bin; ~/.local/bin (on the
# volume) comes first so that people can add their own tools, then what
# `nix profile install` put into ~/.nix-profile.
export PATH="$HOME/.local/bin:$HOME/.nix-profile/bin:/bin"
# Nix goes through the host's daemon when devbox mounts its socket
# (docs/nix-in-containers.md): a login shell gets that too, whatever its parent had.
if [ -S /nix/var/nix/daemon-socket/socket ]; then
	export NIX_REMOTE=daemon
fi
export SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt
export NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt
export GIT_SSL_CAINFO=/etc/ssl/certs/ca-bundle.crt
export LOCALE_ARCHIVE=@localeArchive@
export LANG="${LANG:-C.UTF-8}"
export TZDIR=@tzdir@
export PAGER="${PAGER:-less}"

# The Home Manager modules' session variables (EDITOR, VISUAL, ...).
@sessionVariables@

# devbox's cleanup leaves its warnings here (an idle stop or an auto-destroy
# coming, when, and the command that cancels it); every interactive login shows
# them until they no longer apply. Not for other shells: their output may be a
# protocol (scp, Zed's remote server).
case $- in
*i*)
	if [ -r "$HOME/.local/state/devbox/notice" ]; then
		cat "$HOME/.local/state/devbox/notice"
	fi
	;;
esac

# Interactive bash login shells also get /etc/bashrc.
if [ -n "${BASH_VERSION:-}" ] && [ -n "${PS1:-}" ] && [ -r /etc/bashrc ]; then
	# shellcheck source=/dev/null
	. /etc/bashrc
fi
