#!/usr/bin/env bash
# tshark-cache - stands in for tshark in the test suite: tests/CMakeLists.txt
# links it as build*/shim/tshark and puts that folder first on the tests' PATH.
# It runs the real tshark once per (arguments, contents of the -r capture and
# of any TLS key log given with -o tls.keylog_file:, the tshark binary) and afterwards replays its stdout, stderr and exit status
# from $MX_TSHARK_CACHE. The ASan+UBSan suite compares the same captures with
# the same tshark commands as the first suite, so its tshark runs are replays.
# Not cached: without MX_TSHARK_CACHE, a capture read from stdin, or a run
# that writes a file (-w) or captures live (-i).
set -uo pipefail

# The real tshark: the first on PATH that is not this script.
real=
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  if [ -x "$d/tshark" ] && ! [ "$d/tshark" -ef "${BASH_SOURCE[0]}" ]; then
    real=$d/tshark
    break
  fi
done
if [ -z "$real" ]; then
  echo "tshark-cache: no tshark on PATH" >&2
  exit 127
fi

cache=${MX_TSHARK_CACHE:-}
capture= prev= cacheable=1 keylogs=()
for a in "$@"; do
  [ "$prev" = -r ] && capture=$a
  case $a in -w | -i) cacheable=0 ;; esac
  # a TLS key log (-o tls.keylog_file:PATH) is input too: its contents join the key
  case $a in tls.keylog_file:*) keylogs+=("${a#tls.keylog_file:}") ;; esac
  prev=$a
done
if [ -z "$cache" ] || [ "$cacheable" = 0 ] || [ "$capture" = - ] ||
   { [ -n "$capture" ] && ! [ -f "$capture" ]; }; then
  exec "$real" "$@"
fi

key=$({
  printf '%s\0' "$@"
  stat -L -c '%s %Y %i' "$real"
  [ -z "$capture" ] || sha256sum <"$capture"
  for k in "${keylogs[@]}"; do [ -f "$k" ] && sha256sum <"$k"; done
} | sha256sum | cut -c1-64)
entry=$cache/$key
if [ -f "$entry.rc" ]; then
  cat "$entry.out"
  cat "$entry.err" >&2
  exit "$(cat "$entry.rc")"
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.run.XXXXXX") || exec "$real" "$@"
"$real" "$@" >"$tmp/out" 2>"$tmp/err"
rc=$?
cat "$tmp/out"
cat "$tmp/err" >&2
# The exit status is written last: an entry without it is never replayed.
if [ $rc -lt 128 ]; then # not killed by a signal
  mv "$tmp/out" "$entry.out" && mv "$tmp/err" "$entry.err" && echo $rc >"$tmp/rc" && mv "$tmp/rc" "$entry.rc"
fi
rm -rf "$tmp"
exit $rc
