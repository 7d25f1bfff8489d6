#!/usr/bin/env bash
# tests/cli/run_check.sh: runs one command-line check of `meson test`
# (tests/cli/meson.build) inside a fresh temporary directory.
#
#   run_check.sh [--setup CMD ARG...]... -- CMD ARG...
#
# Any argument may contain {tmp}, replaced by the temporary directory. Each
# --setup command prepares a file the check reads; a failing setup makes the
# check an ERROR (exit 99, which meson never counts as an expected failure,
# so a should_fail check cannot pass because its input is missing). The
# check's own exit status is returned for meson to judge. The directory is
# removed at the end.
set -u

tmp="$(mktemp -d)" || exit 99
trap 'rm -rf "$tmp"' EXIT
placeholder='{tmp}'

cmd=()
add_arg() { cmd+=("${1//"$placeholder"/$tmp}"); }
run_setup() {
    if ! "${cmd[@]}" >"$tmp/setup.log" 2>&1; then
        echo "run_check.sh: setup failed: ${cmd[*]}"
        tail -20 "$tmp/setup.log"
        exit 99
    fi
}

in_setup=false
while [ $# -gt 0 ]; do
    case "$1" in
    --setup)
        if $in_setup; then run_setup; fi
        in_setup=true
        cmd=()
        ;;
    --)
        if $in_setup; then run_setup; fi
        shift
        break
        ;;
    *)
        if ! $in_setup; then
            echo "run_check.sh: usage: run_check.sh [--setup CMD...]... -- CMD..." >&2
            exit 99
        fi
        add_arg "$1"
        ;;
    esac
    shift
done
[ $# -gt 0 ] || { echo "run_check.sh: no check command after --" >&2; exit 99; }

cmd=()
for a in "$@"; do add_arg "$a"; done
"${cmd[@]}"
