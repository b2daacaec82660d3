#!/usr/bin/env bash
# Install the services the test suite talks to for real, on a fresh Debian/Ubuntu machine.
#
# - PostgreSQL: tests/store starts its own throwaway cluster from the installed binaries
#   (initdb + pg_ctl in a temp dir).
# - Chromium and its WebDriver (Debian's chromium + chromium-driver): tests/console drives the
#   operator console in a real headless browser through selenium. No browser is downloaded by a
#   test tool (that fails on a closed network); the distribution's packages are used.
#
# This script only installs packages. It never starts, enables or configures a system service,
# and it is safe to run again.
set -euo pipefail

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
        && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

have_chromium() {
    command -v chromium >/dev/null && command -v chromedriver >/dev/null
}

if have_postgres && have_chromium; then
    echo "install-test-services: PostgreSQL binaries already present: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
    echo "install-test-services: $(chromium --version 2>/dev/null || echo chromium) and chromedriver already present"
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "install-test-services: apt-get not found; install PostgreSQL server binaries, chromium and chromedriver by hand" >&2
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

PACKAGES=()
have_postgres || PACKAGES+=(postgresql)
have_chromium || PACKAGES+=(chromium chromium-driver)

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

if ! have_postgres; then
    echo "install-test-services: postgresql installed but initdb/pg_ctl not found" >&2
    exit 1
fi
if ! have_chromium; then
    echo "install-test-services: chromium installed but chromium/chromedriver not on PATH" >&2
    exit 1
fi
echo "install-test-services: PostgreSQL installed: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
echo "install-test-services: $(chromium --version 2>/dev/null) and $(chromedriver --version 2>/dev/null)"
