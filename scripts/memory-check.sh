#!/usr/bin/env bash
# memory-check - shows that mxray's memory follows concurrent flows, not file size.
# Builds two captures from the corpus's Suricata SMTP captures, one 10x the other
# (copies spaced 60 s apart, so the number of flows alive at once stays the
# same), and prints time, peak RSS, peak flows and peak reassembly bytes for each.
# usage: scripts/memory-check.sh [MXRAY]   (default build/mxray). Not a timed test.
set -euo pipefail
cd "$(dirname "$0")/.."
mxray=${1:-build/mxray}
corpus=../shared/corpus/suricata-verify
[ -d "$corpus" ] || { echo "memory-check: $corpus is absent"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
inputs=$(ls "$corpus"/*.pcap)
for copies in 10 100; do
  scripts/pcap-multiply.py -o "$tmp/x$copies.pcap" --copies $copies --spacing 60 $inputs 2>/dev/null
done
printf '%-8s %10s %8s %10s %8s %12s %16s\n' copies size_MiB time_s maxrss_KiB flows peak_flows peak_reasm_bytes
for copies in 10 100; do
  f=$tmp/x$copies.pcap
  /usr/bin/time -o "$tmp/time" -f "%e %M" "$mxray" -q --idle-timeout 300 --json "$tmp/out.json" "$f" || true
  read -r secs rss < "$tmp/time"
  summary=$(tail -1 "$tmp/out.json")
  python3 - "$copies" "$(du -m "$f" | cut -f1)" "$secs" "$rss" "$summary" <<'PY'
import json, sys
c, size, secs, rss, s = sys.argv[1:]
d = json.loads(s)
print(f"{c:<8} {size:>10} {secs:>8} {rss:>10} {d['flows']:>8} {d['peak_flows']:>12} {d['peak_reassembly_bytes']:>16}")
PY
done
