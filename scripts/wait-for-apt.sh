#!/usr/bin/env bash
# Wait until no other apt or dpkg (unattended-upgrades on a fresh machine, a second terminal)
# holds the package manager's locks, saying so once, instead of letting apt-get fail at once.
# apt and dpkg take fcntl(2) record locks on these files (apt-pkg/contrib/fileutl.cc GetLock),
# so the probe takes the same kind of lock, without blocking, and lets it go at once.
#   wait-for-apt.sh [SECONDS] [LOCK_FILE...]     (default: 900 s, apt's and dpkg's lock files)
set -euo pipefail

timeout=${1:-900}
shift || true
locks=("$@")
if [ "${#locks[@]}" -eq 0 ]; then
  locks=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock
    /var/cache/apt/archives/lock)
fi

held_by_another() {
  python3 - "$@" <<'PY'
import fcntl, os, sys
for path in sys.argv[1:]:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        continue
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(path)
        sys.exit(0)
    finally:
        os.close(fd)
sys.exit(1)
PY
}

deadline=$((SECONDS + timeout))
said=
while lock=$(held_by_another "${locks[@]}"); do
  if [ -z "$said" ]; then
    echo "==> waiting for another package manager to finish (it holds $lock; up to ${timeout} s)" >&2
    said=1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "error: $lock is still held after ${timeout} s; finish or stop the other apt/dpkg" \
      "(e.g. unattended-upgrades) and run this again" >&2
    exit 1
  fi
  sleep 2
done
