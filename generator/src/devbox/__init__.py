"""devbox: self-hosted development containers declared in Nix.

The generator turns users.nix and containers.json into Quadlet units, a cleanup timer and a
manifest (pipeline.py); devbox-ctl (cli/) drives it and the containers' lifecycle.
"""
