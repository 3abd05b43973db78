#!/usr/bin/env bash
# Install the Debian packages the test stack runs (redis-server, prometheus,
# prometheus-alertmanager, nginx, ...) when they are missing, without leaving their services
# running: the tests start their own instances on free loopback ports.
#
# Usage: scripts/install-system-packages.sh redis-server prometheus prometheus-alertmanager
#
# A fast no-op when everything is present. `apt-get update` runs at most once, and only when
# something must be installed. Debian's postinst scripts start services through invoke-rc.d;
# a temporary /usr/sbin/policy-rc.d answering 101 ("action forbidden") stops them from doing so,
# and is removed afterwards if, and only if, this script created it.
# Exit codes: 0 all present, 2 missing packages that could not be installed (or bad usage).
set -euo pipefail

readonly POLICY_RC_D=/usr/sbin/policy-rc.d
created_policy_rc_d=false

# The binary that proves a package is usable; packages not listed are checked with dpkg-query.
binary_of() {
    case "$1" in
        redis-server) echo redis-server ;;
        prometheus) echo prometheus ;;
        prometheus-alertmanager) echo prometheus-alertmanager ;;
        nginx | nginx-light | nginx-core | nginx-full) echo nginx ;;
        chromium) echo chromium ;;
        *) echo "" ;;
    esac
}

is_present() {
    local package=$1 binary
    binary=$(binary_of "$package")
    if [[ -n $binary ]]; then
        # Daemons live in sbin on Debian, which a non-root PATH may lack.
        PATH="$PATH:/usr/sbin:/sbin" command -v "$binary" >/dev/null 2>&1
        return
    fi
    command -v dpkg-query >/dev/null 2>&1 &&
        [[ $(dpkg-query -W -f='${Status}' "$package" 2>/dev/null) == "install ok installed" ]]
}

fail() {
    # $1: why; the remaining arguments: the packages still missing.
    local why=$1
    shift
    echo >&2
    echo "install-system-packages: $why The test stack needs these Debian packages, which are" \
        "not installed: $*. Install them as root with" \
        "'sudo apt-get update && sudo apt-get install -y --no-install-recommends $*'" \
        "(or run 'sudo scripts/install-system-packages.sh $*', which also keeps their services" \
        "from starting), then run 'make test' again." >&2
    exit 2
}

cleanup() {
    if [[ $created_policy_rc_d == true ]]; then
        rm -f "$POLICY_RC_D"
    fi
}

main() {
    if (($# == 0)); then
        echo "usage: $0 DEBIAN-PACKAGE..." >&2
        exit 2
    fi

    local package missing=()
    for package in "$@"; do
        is_present "$package" || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi

    echo "install-system-packages: installing ${missing[*]}" >&2
    if ((EUID != 0)); then
        fail "This needs root, and it runs as $(id -un)." "${missing[@]}"
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        fail "apt-get was not found: this does not look like Debian or Ubuntu." "${missing[@]}"
    fi

    trap cleanup EXIT
    if [[ ! -e $POLICY_RC_D ]]; then
        printf '#!/bin/sh\n# Written by canarist scripts/install-system-packages.sh.\nexit 101\n' \
            >"$POLICY_RC_D"
        chmod 755 "$POLICY_RC_D"
        created_policy_rc_d=true
    fi

    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get update; then
        fail "'apt-get update' failed (is a package mirror reachable?)." "${missing[@]}"
    fi
    if ! apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=120 "${missing[@]}"; then
        fail "'apt-get install' failed (see its output above)." "${missing[@]}"
    fi

    local still_missing=()
    for package in "${missing[@]}"; do
        is_present "$package" || still_missing+=("$package")
    done
    if ((${#still_missing[@]} > 0)); then
        fail "apt-get finished, but their programs are still not found." "${still_missing[@]}"
    fi
}

main "$@"
