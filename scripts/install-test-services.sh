#!/usr/bin/env bash
# Install the services the test suite talks to for real, on a fresh Debian/Ubuntu machine.
#
# Today that is PostgreSQL: tests/store starts its own throwaway cluster from the installed
# binaries (initdb + pg_ctl in a temp dir), so this script only installs packages. It never
# starts, enables or configures the system service, and it is safe to run again.
set -euo pipefail

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
        && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

if have_postgres; then
    echo "install-test-services: PostgreSQL binaries already present: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "install-test-services: apt-get not found; install PostgreSQL server binaries by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps the package's post-install step from starting the system service;
# the tests run their own cluster and need nothing listening on 5432.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    CREATED_POLICY=1
fi
cleanup() {
    if [ "$CREATED_POLICY" -eq 1 ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null

if ! have_postgres; then
    echo "install-test-services: postgresql installed but initdb/pg_ctl not found" >&2
    exit 1
fi
echo "install-test-services: PostgreSQL installed: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
