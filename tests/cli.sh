#!/usr/bin/env bash
# cli.sh - the command line: options, exit status, stdin, several files, damaged input.
# usage: tests/cli.sh MXRAY
set -uo pipefail
mx=$1
cd "$(dirname "$0")/.."
demo=pcaps/demo.pcapng
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { # name, expected status, command...
  local name=$1 want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" = "$want" ]; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL $name: exit $got, wanted $want"; head -5 "$tmp/err"; fi
}
expect() { # name, condition...
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $name"; fi
}

check help 0 "$mx" --help
expect help-ports grep -q "smtp=25,587,465(tls)" "$tmp/out"
check version 0 "$mx" --version
# the commit and the libraries it runs with, for a bug report (issue 29)
expect version-commit grep -Eq '^mxray [0-9.]+ \(commit [^ )]+\)$' "$tmp/out"
expect version-libs grep -q 'libpcap: .*nDPI: .*OpenSSL: .*json-c: ' <(tr '\n' ' ' < "$tmp/out")
check no-files 2 "$mx"
check bad-option 2 "$mx" --no-such-option "$demo"
check bad-number 2 "$mx" --max-flows 0 "$demo"
check bad-memory 2 "$mx" --memory 8 "$demo"
check bad-workers 2 "$mx" --workers 65 "$demo"
check workers-0 0 "$mx" -j0 --memory 16 --json "$tmp/j0.json" "$demo"
check workers-3 0 "$mx" -j3 --memory 16 --json "$tmp/j3.json" "$demo"
expect workers-same cmp -s "$tmp/j0.json" "$tmp/j3.json"
check bad-port 2 "$mx" --port smtp=70000 "$demo"
check bad-port-proto 2 "$mx" --port http=80 "$demo"
# A port named with --port is read as that protocol (the lab's second postfix listens on 2525).
check named-port 0 "$mx" --port smtp=2525 --json "$tmp/p.json" pcaps/smtp/starttls-refused-454.pcap
expect named-port-smtp grep -q '"type":"smtp.reply".*"code":454' "$tmp/p.json"
# -f on a file (issue 25): the selected flows' records as without it, frame numbers included
# (flow ids are the run's own); the frames passed over are counted in the summary.
check filter-file 0 "$mx" -q --json "$tmp/f0.json" "$demo"
check filter-file-f 0 "$mx" -q -f "tcp port 110" --json "$tmp/f1.json" "$demo"
expect filter-file-same python3 - "$tmp/f0.json" "$tmp/f1.json" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
pop3 = {r["flow"] for r in a if r.get("type") == "flow_start" and r.get("proto") == "pop3"}
keep = lambda rs, fl: [{k: v for k, v in r.items() if k != "flow"} for r in rs if r.get("flow") in fl and r["type"] != "summary"]
kept = {r["flow"] for r in b if r.get("type") == "flow_start"}
sa, sb = a[-1], b[-1]
sys.exit(not (pop3 and keep(a, pop3) == keep(b, kept) and sb["frame_count"] == sa["frame_count"]
              and sb.get("frames_filtered", 0) > 0 and "frames_filtered" not in sa))
PY
# --flow (issue 25): a session's records as in the whole run, the same flow numbers and frames
# for any -j, chosen by number, address, address and port, or port; the summary is the run's.
for j in 0 3; do
  check "flow-all-j$j" 0 "$mx" -q -j$j --json "$tmp/fa$j.json" "$demo" "$demo"
  for sel in 2 1,7 :110 127.0.0.1:587 "[::1]:25,6"; do
    check "flow-$sel-j$j" 0 "$mx" -q -j$j --flow "$sel" --json "$tmp/fs.json" "$demo" "$demo"
    expect "flow-$sel-j$j-same" python3 - "$tmp/fa$j.json" "$tmp/fs.json" "$sel" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
def chosen(r, sel):
    for it in sel.split(","):
        if it.isdigit():
            if r["flow"] == int(it): return True
            continue
        addr, _, port = it.rpartition(":")
        addr = addr.strip("[]")
        for end in ("client", "server"):
            if (not addr or r[end] == addr) and r[end + "_port"] == int(port): return True
    return False
ids = {r["flow"] for r in a if r["type"] == "flow_start" and chosen(r, sys.argv[3])}
want = [r for r in a if r.get("flow") in ids]
got = [r for r in b if r.get("flow")]
sys.exit(not (got == want and (ids or sys.argv[3].startswith("[")) and b[-1] == a[-1]))
PY
  done
done
expect flow-j-same cmp -s "$tmp/fa0.json" "$tmp/fa3.json"
check flow-text 0 "$mx" --flow 3 "$demo"
expect flow-text-pop3 bash -c "grep -q 'pop3 127.0.0.1:35486' '$tmp/out' && ! grep -q imap '$tmp/out'"
for bad in 0 x 1.2.3.4:0 1.2.3.4:65536 '[::1' '[::1]x' : 1,,; do
  check "flow-bad-$bad" 2 "$mx" --flow "$bad" "$demo"
done
check filter-file-bad 1 "$mx" -q -f "no such filter (" --json /dev/null "$demo"
expect filter-file-bad-says grep -q "mxray: -f: " "$tmp/err"
check w-without-i 2 "$mx" -w "$tmp/w.pcap" "$demo"
# -r FILE (repeatable, read first) and -c COUNT, as tcpdump spells them (issue 25).
check r-files 0 "$mx" -q --json "$tmp/r.json" -r "$demo" -r pcaps/smtp/attachment.pcap
check r-positional 0 "$mx" -q --json "$tmp/p.json" "$demo" pcaps/smtp/attachment.pcap
expect r-same cmp -s "$tmp/r.json" "$tmp/p.json"
check r-and-positional 0 "$mx" -q --json "$tmp/rp.json" -r "$demo" pcaps/smtp/attachment.pcap
expect r-and-positional-same cmp -s "$tmp/rp.json" "$tmp/p.json"
check count 0 "$mx" -q -c 10 --json "$tmp/c10.json" "$demo" pcaps/smtp/attachment.pcap
expect count-10 python3 -c 'import json,sys; s=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(not (s["frame_count"] == 10 and len(s["files"]) == 1))' "$tmp/c10.json"
check count-filter 0 "$mx" -q -c 3 -f "tcp port 110" --json "$tmp/c3.json" "$demo"
expect count-filter-3 python3 -c 'import json,sys; s=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(not (s["frame_count"] - s["frames_filtered"] == 3))' "$tmp/c3.json"
check count-0 2 "$mx" -c 0 "$demo"
# --since / --until: absolute UTC times or seconds from the first packet; packets outside are
# passed over with their numbers kept. The demo starts at 2026-11-27T08:14:39.273158Z.
check until-0 0 "$mx" -q --until 0 --json "$tmp/u0.json" "$demo"
expect until-0-one python3 -c 'import json,sys; s=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(not (s["frame_count"] - s["frames_filtered"] == 1))' "$tmp/u0.json"
check since-rel 0 "$mx" -q --since 0.1 --until 0.2 --json "$tmp/sr.json" "$demo"
check since-abs 0 "$mx" -q --since 2026-11-27T08:14:39.373158Z --until 2026-11-27T08:14:39.473158 --json "$tmp/sa.json" "$demo"
expect since-rel-abs cmp -s "$tmp/sr.json" "$tmp/sa.json"
check since-start 0 "$mx" -q --since 2026-11-27T08:14:39.273158Z --json "$tmp/ss.json" "$demo"
check since-none 0 "$mx" -q --json "$tmp/sn.json" "$demo"
expect since-start-all cmp -s "$tmp/ss.json" "$tmp/sn.json"
check since-bad 2 "$mx" --since yesterday "$demo"
# A gzip-compressed capture is read as it is (issue 25): the same records as the plain file.
gzip -c "$demo" > "$tmp/demo.pcapng.gz"
check gzip 0 "$mx" -q --json "$tmp/gz.json" "$tmp/demo.pcapng.gz"
expect gzip-same cmp -s <(grep -v '"type":"summary"' "$tmp/gz.json") <(grep -v '"type":"summary"' "$tmp/sn.json")
head -c 3000 "$tmp/demo.pcapng.gz" > "$tmp/cut.pcapng.gz"
check gzip-cut 3 "$mx" -q --json /dev/null "$tmp/cut.pcapng.gz"
# zstd and xz as gzip (issue 25): the same records; a cut one ends as a cut file (exit 3), its
# records up to the cut. zstd decodes whole blocks: small ones, so that a cut falls after some.
zstd -q -c --target-compressed-block-size=1024 "$demo" > "$tmp/demo.pcapng.zst"
xz -c "$demo" > "$tmp/demo.pcapng.xz"
for z in zst xz; do
  check "$z" 0 "$mx" -q --json "$tmp/$z.json" "$tmp/demo.pcapng.$z"
  expect "$z-same" cmp -s <(grep -v '"type":"summary"' "$tmp/$z.json") <(grep -v '"type":"summary"' "$tmp/sn.json")
  head -c 3000 "$tmp/demo.pcapng.$z" > "$tmp/cut.pcapng.$z"
  check "$z-cut" 3 "$mx" -q --json "$tmp/$z-cut.json" "$tmp/cut.pcapng.$z"
  expect "$z-cut-truncated" grep -q '"status":"truncated".*"FILE_TRUNCATED":1' "$tmp/$z-cut.json"
done
# Cut after its last record (the zstd checksum, the xz index): still cut.
size=$(stat -c %s "$tmp/demo.pcapng.zst")
head -c $((size - 4)) "$tmp/demo.pcapng.zst" > "$tmp/cut.pcapng.zst"
check zst-cut-end 3 "$mx" -q --json /dev/null "$tmp/cut.pcapng.zst"
# Corrupt data is a read error: what came before is reported (exit 3).
cp "$tmp/demo.pcapng.zst" "$tmp/bad.zst" && printf '\377\377\377\377' | dd of="$tmp/bad.zst" bs=1 seek=5000 conv=notrunc 2>/dev/null
check zst-corrupt 3 "$mx" --json /dev/null "$tmp/bad.zst"
expect zst-corrupt-says grep -q "corrupt zstd data" "$tmp/err"
# A directory or a glob of rotated captures (issue 25) reads as one capture, in the order of
# each file's first packet whatever the names: the demo cut in 10 (editcap -c, as tcpdump -C and
# dumpcap ring buffers do), named so that name order is wrong, two compressed, and a file that
# is no capture (skipped with a message) give the demo's records; sessions span the cuts.
if command -v editcap >/dev/null; then
  mkdir "$tmp/rot" && (cd "$tmp/rot" && editcap -c 10 "$OLDPWD/$demo" e.pcapng >/dev/null)
  i=0; for f in $(ls "$tmp/rot"); do mv "$tmp/rot/$f" "$tmp/rot/r$((9 - i)).pcapng"; i=$((i + 1)); done
  gzip "$tmp/rot/r3.pcapng"; zstd -q --rm "$tmp/rot/r5.pcapng"; echo notes > "$tmp/rot/README"
  check rotated-dir 0 "$mx" --json "$tmp/rd.json" "$tmp/rot"
  expect rotated-dir-same cmp -s <(grep -v '"type":"summary"' "$tmp/rd.json") <(grep -v '"type":"summary"' "$tmp/sn.json")
  expect rotated-skip-says grep -q "README: skipped, not a capture" "$tmp/err"
  expect rotated-order python3 -c 'import json,sys; s=[json.loads(l) for l in open(sys.argv[1])][-1]; sys.exit(not ([f["path"].rsplit("/",1)[1][:2] for f in s["files"]] == ["r%d" % i for i in range(9, -1, -1)] and s["frame_count"] == 94))' "$tmp/rd.json"
  check rotated-glob 0 "$mx" -q -j3 --json "$tmp/rg.json" "$tmp/rot/r*"
  expect rotated-glob-same cmp -s "$tmp/rd.json" "$tmp/rg.json"
else
  echo "cli: no editcap (tshark's package): the rotated-capture checks are skipped"
  mkdir "$tmp/rot" && cp "$demo" "$tmp/rot/"
fi
check glob-none 1 "$mx" "$tmp/rot/none*"
mkdir "$tmp/empty"
check dir-empty 1 "$mx" "$tmp/empty"
# --write-flows (issue 25): one pcap per chosen session, read again from the files; read back,
# it gives that session's records (frame numbers and the flow number aside), and tshark reads it.
cat > "$tmp/rt.py" <<'PY'
import json, sys
def strip(r):
    if isinstance(r, dict):
        return {k: strip(v) for k, v in r.items() if k != "flow" and "frame" not in k}
    return [strip(v) for v in r] if isinstance(r, list) else r
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
want = [strip(r) for r in a if r.get("flow") == int(sys.argv[3])]
sys.exit(not want or [strip(r) for r in b if r.get("flow")] != want)
PY
check write-flows 0 "$mx" --flow 2,3 --write-flows "$tmp/wf" --json "$tmp/wf.json" "$tmp/rot"
expect write-flows-says grep -q "2 sessions written to" "$tmp/err"
for n in 2 3; do
  f=$(ls "$tmp/wf/flow$n-"*.pcap)
  check "write-flows-read-$n" 0 "$mx" -q --json "$tmp/wf$n.json" "$f"
  expect "write-flows-same-$n" python3 "$tmp/rt.py" "$tmp/wf.json" "$tmp/wf$n.json" $n
  if command -v tshark >/dev/null; then
    expect "write-flows-tshark-$n" test "$(tshark -r "$f" 2>/dev/null | wc -l)" = \
      "$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if "\"type\":\"flow\"" in l and "\"flow\":'$n'," in l][0]; print(r["c2s"]["packets"]+r["s2c"]["packets"])' "$tmp/wf.json")"
  fi
done
# With -f, the sessions it lets through; with no selector, those --failures lists.
check write-flows-f 0 "$mx" -q -f "tcp port 110" --write-flows "$tmp/wff" --json /dev/null "$demo"
expect write-flows-f-one test "$(ls "$tmp/wff")" = flow1-127.0.0.1.35486-127.0.0.1.110.pcap
check write-flows-failed 0 "$mx" --write-flows "$tmp/wfx" --failures pcaps/smtp/*.pcap
expect write-flows-failed-same test "$(ls "$tmp/wfx" | sed 's/-.*//; s/flow//' | sort -n | tr '\n' ' ')" = \
  "$(grep -Eo '^(FAILED|DEFERRED)  .*  flow [0-9]+,' "$tmp/out" | sed 's/.*flow //; s/,//' | sort -un | tr '\n' ' ')"
check write-flows-stdin 2 sh -c "'$mx' --write-flows '$tmp/wfs' - < '$demo'"
check write-flows-live 2 "$mx" -i lo --write-flows "$tmp/wfl"
check write-flows-not-empty 1 "$mx" --write-flows "$tmp/wf" "$demo"
check r-with-i 2 "$mx" -i lo -r "$demo"
check missing-file 1 "$mx" /nonexistent.pcap
check not-a-capture 1 "$mx" README.md

check demo-text 0 "$mx" "$demo"
expect text-has-summary grep -q "summary: " "$tmp/out"
check demo-json 0 "$mx" --json "$tmp/a.json" "$demo"
check stdin 0 sh -c "'$mx' --json - - < '$demo'"
expect stdin-same-records bash -c "grep -v '\"summary\"' '$tmp/out' | cmp -s - <(grep -v '\"summary\"' '$tmp/a.json')"

# The HTML report: one file, no network resource, no timeline on stdout.
check html 0 "$mx" --html "$tmp/r.html" "$demo"
expect html-doctype grep -q '^<!DOCTYPE html>' "$tmp/r.html"
expect html-no-stdout test ! -s "$tmp/out"
expect html-self-contained bash -c "! grep -Eq '(src|href)=\"(https?:)?//' '$tmp/r.html'"
expect html-sessions test "$(grep -c '<section class="ses"' "$tmp/r.html")" = 4
check html-stdout 0 "$mx" --html - "$demo"
expect html-stdout-same cmp -s "$tmp/out" "$tmp/r.html"
check html-json-stdout 2 "$mx" --html - --json - "$demo"
check html-unwritable 1 "$mx" --html /nonexistent/dir/r.html "$demo"

# --progress writes only to stderr and clears its line at the end; off by default off a terminal.
check progress 0 "$mx" --progress --json "$tmp/p.json" "$demo"
expect progress-cleared bash -c "printf '\r\033[K' | cmp -s - <(tail -c 4 '$tmp/err')"
expect progress-same-records bash -c "grep -v '\"summary\"' '$tmp/p.json' | cmp -s - <(grep -v '\"summary\"' '$tmp/a.json')"
check no-progress 0 "$mx" --json /dev/null "$demo"
expect no-progress-quiet test ! -s "$tmp/err"

# Two files read as one capture: frames continue, flows are numbered on.
n=$(grep -c '"type":"flow_start"' "$tmp/a.json")
frames=$(sed -n 's/.*"type":"summary".*"frame_count":\([0-9]*\),"bytes".*/\1/p' "$tmp/a.json")
check two-files 0 "$mx" --json "$tmp/b.json" "$demo" "$demo"
expect two-files-flows test "$(grep -c '"type":"flow_start"' "$tmp/b.json")" = $((2 * n))
expect two-files-frames grep -q "\"first_frame\":$((frames + 1)),\"frame_count\":$frames" "$tmp/b.json"

# A file cut in the middle of a record: processed, warned about, exit 3.
size=$(stat -c %s "$demo")
head -c $((size - 37)) "$demo" > "$tmp/cut.pcapng"
check truncated 3 "$mx" --json "$tmp/c.json" "$tmp/cut.pcapng"
expect truncated-warning grep -q "warning: .*cut.pcapng: frame" "$tmp/err"
expect truncated-flows grep -q '"type":"flow"' "$tmp/c.json"
# A damage warning raised in a worker names the file of its frame, though the
# reader has moved on to the next files by then.
check snaplen-in-middle 3 "$mx" -j2 --json /dev/null "$demo" pcaps/impaired/imap-login-fetch-snaplen.pcap \
  pcaps/smtp/*.pcap
expect snaplen-names-its-file grep -q "warning: pcaps/impaired/imap-login-fetch-snaplen.pcap: frame" "$tmp/err"
check truncated-quiet 3 "$mx" -q --json /dev/null "$tmp/cut.pcapng"
expect quiet-silent test ! -s "$tmp/err"

# Secrets: redacted by default, written with --show-secrets (zeek/smtp.pcap: AUTH LOGIN).
corpus_smtp=../shared/corpus/zeek/smtp.pcap
if [ -f "$corpus_smtp" ]; then
  check secrets-hidden 0 "$mx" --json "$tmp/h.json" "$corpus_smtp"
  expect secrets-hidden-len grep -q '"secret_len":10' "$tmp/h.json"
  expect secrets-hidden-nowhere sh -c "! grep -q '\"secret\":' '$tmp/h.json'"
  check secrets-shown 0 "$mx" --show-secrets --json "$tmp/s.json" "$corpus_smtp"
  expect secrets-shown-json grep -q '"secret":"' "$tmp/s.json"
fi

# --explain on the lab's captures (issue 27, "Teaching that teaches"): multi-line replies item by
# item, LOGIN prompts decoded (the password never), states right under pipelining, POP3
# TRANSACTION after the login and UPDATE after QUIT, IMAP's greeting and untagged data explained.
check explain-pipelining 0 "$mx" --explain pcaps/smtp/pipelining.pcap
for cap in PIPELINING 'SIZE 20000' 8BITMIME SMTPUTF8 CHUNKING DSN ENHANCEDSTATUSCODES STARTTLS ETRN VRFY; do
  expect "explain-ehlo-$cap" grep -q "^ \{27\}$cap: .*(RFC [0-9]" "$tmp/out"
done
expect explain-pipelined-states python3 - "$tmp/out" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
# each pipelined command (a "| " line) with the state on the line after it
got = [(re.search(r"C->S \| (\w+)", l).group(1), re.match(r"\s+\[(\w+)\]", lines[i + 1]).group(1))
       for i, l in enumerate(lines) if "C->S | " in l]
sys.exit(0 if got == [("RCPT", "mail"), ("RCPT", "rcpt"), ("RCPT", "rcpt"), ("DATA", "rcpt")] and
         all("Pipelined (RFC 2920)" in lines[i + 1] for i, l in enumerate(lines) if "C->S | " in l) else 1)
PY
check explain-pipelining-swaks 0 "$mx" --explain pcaps/smtp/pipelining-swaks.pcap
expect explain-swaks-data-rcpt grep -A1 -q 'C->S | DATA' "$tmp/out"
expect explain-swaks-not-greeted sh -c "! grep -A1 'C->S | ' '$tmp/out' | grep -q '\[greeted\]'"
check explain-auth-login 0 "$mx" --explain pcaps/smtp/auth-login-clear.pcap
expect explain-334-username grep -q 'base64-decoded: "Username:"' "$tmp/out"
expect explain-334-password grep -q 'base64-decoded: "Password:"' "$tmp/out"
expect explain-334-no-secret grep -q '<SASL response, redacted: [0-9]* bytes>' "$tmp/out"
check explain-pop3 0 "$mx" --explain pcaps/pop3/user-pass-retr.pcap
expect explain-pop3-retr grep -A1 -q 'C->S RETR 1' "$tmp/out"
expect explain-pop3-retr-transaction sh -c "grep -A1 'C->S RETR 1' '$tmp/out' | grep -q '\[TRANSACTION\]'"
expect explain-pop3-update sh -c "grep -A1 'S->C +OK Logging out' '$tmp/out' | grep -q '\[UPDATE\]'"
expect explain-pop3-capa grep -q '^ \{27\}UIDL: .*(RFC 2449 §6.8)' "$tmp/out"
check explain-pop3-drop 0 "$mx" --explain pcaps/impaired/pop3-user-pass-retr-drop.pcap
expect explain-pop3-drop-retr sh -c "! grep -A1 'C->S RETR' '$tmp/out' | grep -q AUTHORIZATION"
check explain-imap 0 "$mx" --explain pcaps/imap/login-fetch.pcap
expect explain-imap-greeting grep -q '\[not authenticated\] the greeting: the server is ready' "$tmp/out"
expect explain-imap-exists grep -q '\] the mailbox holds [0-9]* message' "$tmp/out"
expect explain-imap-uidvalidity grep -q '\] \[UIDVALIDITY [0-9]*\] the mailbox.s UID validity' "$tmp/out"
expect explain-imap-capability grep -q '^ \{27\}IDLE: .*(RFC 2177)' "$tmp/out"
expect explain-imap-bye sh -c "grep -A1 'S->C \* BYE' '$tmp/out' | grep -q '\[logout\]'"
expect explain-imap-untagged-all python3 - "$tmp/out" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
# every untagged line has its explanation under it
sys.exit(0 if all(lines[i + 1].lstrip().startswith("[") for i, l in enumerate(lines) if "S->C * " in l) else 1)
PY

# --extract: every path the records give is a file there; the caps take MiB from 1.
check extract-max-0 2 "$mx" --extract "$tmp/x0" --extract-max 0 "$demo"
check extract-total-bad 2 "$mx" --extract "$tmp/x0" --extract-total 1x "$demo"
check extract 0 "$mx" --extract "$tmp/x" --extract-max 1 --extract-total 2 --json "$tmp/x.json" "$demo"
expect extract-paths python3 -c "
import json, os, sys
paths = [p for l in open('$tmp/x.json') if l.startswith('{\"type\":\"message\"')
         for r in [json.loads(l)] for p in [r.get('extracted')] + [q.get('extracted') for q in r['parts']] if p]
sys.exit(0 if paths and all(os.path.isfile(p) for p in paths) and len(os.listdir('$tmp/x')) == len(paths) else 1)"
check extract-again 0 "$mx" --extract "$tmp/x" --json "$tmp/x2.json" "$demo"
expect extract-again-new-names python3 -c "
import json, os, sys
n = sum(1 for l in open('$tmp/x2.json') if '\"extracted\":' in l and '~1' in l)
sys.exit(0 if n and len(os.listdir('$tmp/x')) == 2 * sum(l.count('\"extracted\":') for l in open('$tmp/x.json')) else 1)"

# --streams wants an empty directory.
mkdir "$tmp/s" && touch "$tmp/s/x"
check streams-not-empty 1 "$mx" --streams "$tmp/s" "$demo"
check streams 0 "$mx" --streams "$tmp/s2" "$demo"
expect streams-index python3 -c "import json,sys; d=json.load(open('$tmp/s2/index.json')); sys.exit(0 if len(d['streams'])==$n else 1)"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
