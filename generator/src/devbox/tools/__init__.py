"""The programs devbox drives, one module each.

process is the only module that runs programs; podman, systemd, nix, onepassword (op),
tailscale and gitrepo (the config repository's git) each wrap one program. Nothing here knows
about containers.json, users or the lifecycle: these modules import only the foundation
(errors) and each other.
"""
