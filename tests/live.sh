#!/usr/bin/env bash
# live.sh - live capture on loopback with the lab's own servers (issue 8).
# The lab runs a few scenarios against real postfix and dovecot in a private
# network namespace; mxray captures each with -i lo (and -w) while tcpdump
# writes the same traffic to a file. mxray's live records must equal those it
# gives for tcpdump's file and for its own -w copy, and SIGINT must end the
# capture cleanly with the capture counters in the summary. Its records come
# through a pipe (--json -), and each must arrive as soon as it is made.
# usage: tests/live.sh MXRAY. Needs root, postfix, dovecot and tcpdump
# (scripts/setup.sh installs them); skips (77) with a message otherwise.
set -uo pipefail
mx=$(realpath "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
skip() { echo "live: skipped: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "capturing and the lab's network namespace need root"
for c in postfix dovecot swaks tcpdump tcprewrite unshare ip python3; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || skip "$c is not installed (scripts/setup.sh installs it)"
done
unshare --net true 2>/dev/null || skip "this machine does not allow a new network namespace"

tmp=$(mktemp -d)
chmod 755 "$tmp"    # postfix and dovecot drop privileges and must reach it
lab=
cleanup() {
  # The lab ends its servers on SIGTERM; wait for it, bounded.
  if [ -n "$lab" ] && kill -0 "$lab" 2>/dev/null; then
    kill -TERM "$lab"
    for _ in $(seq 100); do kill -0 "$lab" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# SMTP with STARTTLS and AUTH, POP3, IMAP with a FETCH: every dissector and
# the TLS observer; mail through dante's SOCKS tunnels (the carrier).
scenarios=(smtp/starttls-auth pop3/user-pass-retr imap/login-fetch tunnel/socks-noauth)
MXLAB_LIVE=$mx PYTHONDONTWRITEBYTECODE=1 python3 "$repo/scripts/lab/lab.py" run "${scenarios[@]}" \
  --pcaps "$tmp/pcaps" --work "$tmp/work" --certs "$tmp/certs" > "$tmp/lab.log" 2>&1 &
lab=$!
if ! wait "$lab"; then
  lab=
  cat "$tmp/lab.log"
  for f in "$tmp"/pcaps/*/*.live.log; do [ -f "$f" ] && { echo "== $f"; cat "$f"; }; done
  echo "live: FAIL: the lab run failed"
  exit 1
fi
lab=

pass=0 fail=0
ok() {
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*"; return 1; fi
}
# Every record but the run's summary (input names, counters, elapsed time),
# in order.
norm() {
  python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["type"] != "summary":
        print(json.dumps(r, sort_keys=True))' "$1"
}
# The same records, but times may differ by up to 10 ms: tcpdump's socket and
# mxray's each take their own timestamp of a packet.
same_but_times() {
  python3 - "$1" "$2" <<'PY'
import json, re, sys
from datetime import datetime
def recs(p):
    return [json.loads(l) for l in open(p) if json.loads(l)["type"] != "summary"]
def t(v):
    return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
def same(a, b, key=""):
    if key in ("ts", "last_ts", "start", "end") and isinstance(a, str) and isinstance(b, str):
        return abs(t(a) - t(b)) <= 0.01
    if key in ("latency", "duration") and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 0.01
    if key.endswith("_ms") and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 10  # first_byte_ms, complete_ms, stall_ms, the handshake's rtt
    if key == "stall_frames":
        return True  # the longest stall: of stalls a few microseconds long, which one is longest is timing
    if key == "last_seen" and isinstance(a, str) and isinstance(b, str):
        iso = r"\d{4}-\d\d-\d\dT[\d:.]+Z"
        return re.sub(iso, "T", a) == re.sub(iso, "T", b)  # a journey's "... at TIME; not seen after"
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], k) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, key) for x, y in zip(a, b))
    return a == b
A, B = recs(sys.argv[1]), recs(sys.argv[2])
bad = [i for i, (x, y) in enumerate(zip(A, B)) if not same(x, y)]
if len(A) != len(B) or bad:
    print("records: %d live, %d from the file; first difference at %s" % (len(A), len(B), bad[:1]))
    for i in bad[:1]:
        print(" live:", json.dumps(A[i], sort_keys=True)); print(" file:", json.dumps(B[i], sort_keys=True))
    sys.exit(1)
PY
}
# Why the two sockets' captures differ, when they do: mxray's capture
# counters, and the first packet where tcpdump's file and mxray's -w copy
# part (addresses, ports, flags, sequence numbers and lengths; no times).
explain() {
  grep -o '"capture":{[^}]*}' "$1.live.json"
  diff <(tcpdump -r "$1.pcap" -n -t 2>/dev/null | cut -c1-160) \
       <(tcpdump -r "$1.live.pcap" -n -t 2>/dev/null | cut -c1-160) | head -8
}
# Records reach a pipe as they are made (--json - into kcat or a shipper,
# docs/manual.md): the lab reads mxray's standard output and notes when each
# line arrived. Every record made before the SIGINT that ends the capture must
# come before it (a record held in a buffer comes at exit, after it): all but
# the run's own (summary, audit, findings, journeys) and those of flows the
# SIGINT closed; and a record of the dialogue within a second of its packet.
arrived_live() {
  python3 - "$1.live.json" "$1.live.arrivals" "$1.live.sigint" <<'PY'
import json, sys
from datetime import datetime
recs = [json.loads(l) for l in open(sys.argv[1])]
when = [float(l) for l in open(sys.argv[2])]
sigint = float(open(sys.argv[3]).read())
DIALOGUE = (".command", ".reply", ".response", ".untagged", ".auth", ".data", ".transaction")
RUN = ("summary", "audit.server", "finding", "journey")
at_end = {r["flow"] for r in recs if r["type"] == "flow" and r.get("close") == "capture_end"}
late, n = [], 0
for r, t in zip(recs, when):
    if r["type"] in RUN or r.get("flow") in at_end:
        continue
    n += 1
    ts = datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp() if "ts" in r else None
    slow = r["type"].endswith(DIALOGUE) and ts is not None and t - ts > 1.0
    if t >= sigint or slow:
        late.append("%s flow %s frames %s: %s, %.3f s %s the SIGINT"
                    % (r["type"], r.get("flow"), r.get("frames"),
                       "%.3f s after its packet" % (t - ts) if ts else "no ts",
                       abs(sigint - t), "after" if t >= sigint else "before"))
if len(recs) != len(when) or not n or late:
    print("records %d, arrival times %d, checked %d, late %d" % (len(recs), len(when), n, len(late)))
    print("\n".join(late[:5]))
    sys.exit(1)
PY
}
for s in "${scenarios[@]}"; do
  base=$tmp/pcaps/$s
  live=$base.live.json
  ok arrived_live "$base"
  echo "== $s"
  ok test -s "$live"
  # SIGINT ended the capture: the summary carries the capture's counters.
  ok grep -q '"capture":{"received":[1-9]' "$live"
  "$mx" -q --json "$tmp/file.json" "$base.pcap"
  "$mx" -q --json "$tmp/own.json" "$base.live.pcap"
  ok test "$(norm "$live" | grep -c "\"type\": \"${s%%/*}[.\"]")" -gt 0
  ok same_but_times "$live" "$tmp/file.json" || explain "$base"
  ok diff <(norm "$live") <(norm "$tmp/own.json")
done
ok grep -q '"type":"tls"' "$tmp/pcaps/smtp/starttls-auth.live.json"
echo "live: $pass passed, $fail failed"
[ "$fail" = 0 ]
