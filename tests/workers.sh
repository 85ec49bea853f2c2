#!/usr/bin/env bash
# workers.sh - worker threads change nothing in the output: every capture of
# pcaps/ (and of ../shared/corpus when it is there) gives the same JSON and
# timeline with -j0 (one thread) as with 1 and 3 workers, byte for byte.
# usage: tests/workers.sh MXRAY
set -uo pipefail
mx=$(realpath "$1")
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
# One worker, and more workers than CPUs here; under ASan/UBSan (slow) only the latter.
counts=(1 3)
if grep -qa -e __asan_init -e __ubsan_handle "$mx"; then counts=(3); fi

# run NAME ARGS...: the outputs of -j0 and of -jN must match (stdin: $IN).
run() {
  local name=$1; shift
  "$mx" -q -j0 --explain --json "$tmp/a.json" "$@" <"${IN:-/dev/null}" >"$tmp/a.txt" 2>/dev/null
  local want=$?
  if [ ! -s "$tmp/a.json" ]; then
    fail=$((fail + 1)); echo "FAIL $name: no records (exit $want)"; return
  fi
  for j in "${counts[@]}"; do
    timeout 120 "$mx" -q -j$j --explain --json "$tmp/b.json" "$@" <"${IN:-/dev/null}" >"$tmp/b.txt" 2>/dev/null
    local got=$?
    if [ "$got" != "$want" ]; then
      fail=$((fail + 1)); echo "FAIL $name -j$j: exit $got, wanted $want"; continue
    fi
    if ! cmp -s "$tmp/a.json" "$tmp/b.json"; then
      fail=$((fail + 1)); echo "FAIL $name -j$j: JSON differs"
      diff "$tmp/a.json" "$tmp/b.json" | head -4; continue
    fi
    if ! cmp -s "$tmp/a.txt" "$tmp/b.txt"; then
      fail=$((fail + 1)); echo "FAIL $name -j$j: timeline differs"; continue
    fi
    pass=$((pass + 1))
  done
}

mapfile -t own < <(find pcaps -name '*.pcap' -o -name '*.pcapng' | sort)
for f in "${own[@]}"; do
  run "$f" "$f"
done
# All of them as one capture, with a short idle timeout: flows of many
# captures at once, clocks that jump, and timeouts at the same frames in
# several workers.
run "all pcaps, --idle-timeout 1" --idle-timeout 1 "${own[@]}"
run "all pcaps" "${own[@]}"
# Rings of 4 KiB and 16 buckets of flows (src/engine/pipeline.c, place()):
# rings full all the time, and buckets placed on another worker as soon as
# their flows are gone. A flow split between two workers changes the output.
MXRAY_PIPE_SMALL=1 run "all pcaps, --idle-timeout 1, small pipe" --idle-timeout 1 "${own[@]}"
MXRAY_PIPE_SMALL=1 run "all pcaps, small pipe" "${own[@]}"
IN=pcaps/demo.pcapng run "stdin" -

corpus=../shared/corpus
if [ -d "$corpus" ]; then
  mapfile -t theirs < <(find "$corpus" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) | sort)
  for f in "${theirs[@]}"; do
    run "${f#../shared/}" "$f"
  done
  MXRAY_PIPE_SMALL=1 run "all of the corpus, --idle-timeout 1, small pipe" --idle-timeout 1 "${theirs[@]}"
else
  echo "SKIP: $corpus is absent; only the project's captures were compared"
fi

echo "workers: $pass passed, $fail failed"
[ "$fail" = 0 ]
