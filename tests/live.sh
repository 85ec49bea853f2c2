#!/usr/bin/env bash
# live.sh - live capture on loopback: an SMTP dialogue between two local
# processes, captured with -i lo (and -w), must give the same records as the
# written capture read back from the file; SIGINT ends the run cleanly.
# usage: tests/live.sh MXRAY. Needs root (capture rights); skips (77) otherwise.
set -uo pipefail
mx=$1
if [ "$(id -u)" != 0 ]; then echo "live: skipped: capturing needs root"; exit 77; fi
command -v python3 >/dev/null || { echo "live: skipped: no python3"; exit 77; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
port=$(( 20000 + RANDOM % 20000 ))

# A one-connection SMTP server on 127.0.0.1, bounded in time.
python3 - "$port" > "$tmp/server.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); s.settimeout(15)
c, _ = s.accept(); c.settimeout(10); f = c.makefile("rb")
c.sendall(b"220 live.test ESMTP\r\n")
replies = {b"EHLO": b"250-live.test\r\n250 PIPELINING\r\n", b"MAIL": b"250 2.1.0 Ok\r\n",
           b"RCPT": b"250 2.1.5 Ok\r\n", b"DATA": b"354 go ahead\r\n", b"QUIT": b"221 2.0.0 Bye\r\n"}
data = False
for line in f:
    if data:
        if line == b".\r\n":
            data = False; c.sendall(b"250 2.0.0 Ok: queued as LIVE1\r\n")
        continue
    verb = line.split()[0].upper() if line.split() else b""
    c.sendall(replies.get(verb, b"502 5.5.2 Error\r\n"))
    data = verb == b"DATA"
    if verb == b"QUIT":
        break
c.close()
PY
pids+=($!)

"$mx" -q -i lo -f "tcp port $port" --port "smtp=$port" -w "$tmp/live.pcap" --json "$tmp/live.json" 2> "$tmp/mx.err" &
mxpid=$!
pids+=($mxpid)
sleep 1.5

python3 - "$port" <<'PY'
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10); f = c.makefile("rb")
def rd():
    while True:
        l = f.readline()
        if l[3:4] != b"-":
            return l
rd()
for cmd in [b"EHLO client.test", b"MAIL FROM:<a@live.test>", b"RCPT TO:<b@live.test>", b"DATA"]:
    c.sendall(cmd + b"\r\n"); rd()
c.sendall(b"Subject: live\r\n\r\nhello\r\n.\r\n"); rd()
c.sendall(b"QUIT\r\n"); rd(); c.close()
PY
sleep 1
kill -INT "$mxpid"
for _ in $(seq 50); do kill -0 "$mxpid" 2>/dev/null || break; sleep 0.1; done
wait "$mxpid"; rc=$?
pass=0 fail=0
ok() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*"; cat "$tmp/mx.err"; fi; }
ok test "$rc" = 0
ok grep -q '"capture":{"received"' "$tmp/live.json"
"$mx" -q --port "smtp=$port" --json "$tmp/file.json" "$tmp/live.pcap"
norm() { python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["type"].startswith("smtp."):
        print(json.dumps(r, sort_keys=True))' "$1"; }
ok test -n "$(norm "$tmp/live.json")"
ok cmp -s <(norm "$tmp/live.json") <(norm "$tmp/file.json")
ok grep -q '"queue_id":"LIVE1"' "$tmp/live.json"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
