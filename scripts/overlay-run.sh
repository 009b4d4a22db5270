#!/usr/bin/env bash
# overlay-run.sh CMD ARG...: runs CMD as root in a private mount namespace where /etc, /usr and /var are
# overlays of the host's (writes go to a scratch directory, removed afterwards) and /run is an empty tmpfs.
# make deb-test DEB_TEST_SANDBOX=1 uses it to install and purge the package without touching the host's
# files, dpkg database or /var/lib/tacagent: on a shared machine where another agent runs, for instance.
# Needs CAP_SYS_ADMIN (unshare -m, overlayfs); the processes are the host's (same pid and network
# namespaces), so the test's own loopback servers work as outside.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "overlay-run.sh: needs root" >&2; exit 1; }
scratch=$(mktemp -d /tmp/overlay-run.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export OVERLAY_SCRATCH=$scratch
unshare -m --propagation private bash -euc '
for d in etc usr var; do
	mkdir -p "$OVERLAY_SCRATCH/up-$d" "$OVERLAY_SCRATCH/work-$d"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$OVERLAY_SCRATCH/up-$d,workdir=$OVERLAY_SCRATCH/work-$d" "/$d"
done
mount -t tmpfs -o mode=0755 tmpfs /run
# What another agent on the host made is not ours: hidden here (a whiteout in the overlay).
rm -rf /var/lib/tacagent
exec "$@"' overlay-run "$@"
