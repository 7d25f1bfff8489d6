#!/usr/bin/env bash
# tests/cli/expect_exit.sh: one command-line check of an exact exit status
# and of what the command prints (tests/cli/meson.build).
#
#   expect_exit.sh STATUS [--err REGEX] [--out REGEX] [--no-err] -- CMD ARG...
#
# Passes when CMD exits with STATUS, its stderr is exactly one line matching
# the extended regular expression of --err (when given), its stdout has a
# line matching --out (when given), and its stderr is empty with --no-err.
# Otherwise it prints what differed, with both outputs, and exits 1.
set -u

want="$1"
shift
err_re="" out_re="" no_err=false
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    case "$1" in
    --err) err_re="$2"; shift 2 ;;
    --out) out_re="$2"; shift 2 ;;
    --no-err) no_err=true; shift ;;
    *) echo "expect_exit.sh: unknown option '$1'" >&2; exit 99 ;;
    esac
done
[ "${1:-}" = "--" ] && [ $# -gt 1 ] || { echo "expect_exit.sh: no command after --" >&2; exit 99; }
shift

out="$(mktemp)" err="$(mktemp)"
trap 'rm -f "$out" "$err"' EXIT
"$@" >"$out" 2>"$err"
got=$?
bad=""
[ "$got" = "$want" ] || bad="exit status $got, expected $want"
if [ -n "$err_re" ]; then
    lines=$(wc -l <"$err")
    [ "$lines" = 1 ] || bad="$bad; stderr has $lines lines, expected one"
    grep -Eq -- "$err_re" "$err" || bad="$bad; stderr does not match /$err_re/"
fi
if $no_err && [ -s "$err" ]; then
    bad="$bad; stderr is not empty"
fi
if [ -n "$out_re" ] && ! grep -Eq -- "$out_re" "$out"; then
    bad="$bad; stdout has no line matching /$out_re/"
fi
if [ -n "$bad" ]; then
    echo "expect_exit.sh: $*: ${bad#; }"
    echo "--- stdout (last 20 lines)"
    tail -20 "$out"
    echo "--- stderr"
    cat "$err"
    exit 1
fi
exit 0
