"""`python -m devbox` runs devbox-ctl."""

from devbox.cli import main

main()
