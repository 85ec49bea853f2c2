#!/usr/bin/env python3
"""compare_streams: check mxray's TCP reassembly against tshark, byte for byte.

Usage:
  tests/oracle/compare_streams.py [-v] [-j N] [--mxray PATH] [--known FILE] [CAPTURE...]

With no CAPTURE, every capture listed in ../shared/corpus/MANIFEST.tsv (column
`path`) is checked.  A CAPTURE may be given relative to the current directory,
the repository root, this script's directory or the corpus; `.gz` captures are
decompressed to a temporary file first.

For each capture, mxray runs with `--streams` into a temporary directory and
tshark lists its TCP streams; every tshark stream with a mail port (25, 587,
465, 110, 995, 143, 993) on either end is followed in raw form (one tshark
pass per batch of streams), matched to mxray's stream with the same endpoint
pair (repeated 4-tuples in order of first frame) and compared both ways.

Each flow is classified:
  ok        both directions equal
  gap       mxray recorded gaps in a direction (gaps as stream offsets, so
            an offset counts the gaps before it).  The models differ: tshark
            prints "[N bytes missing in capture file]" only where the peer
            ACKed bytes the capture lacks and later data follows, and nothing
            for snaplen-cut payload.  So the markers are taken out and the
            data must equal mxray's (or, where tshark holds the bytes mxray
            missed, tshark's data with mxray's gap spans taken out); where the
            gaps sit is reported
  known     a difference listed in tests/oracle/compare_streams.known (TSV:
            capture path relative to the corpus, tshark stream number,
            c2s|s2c|*, reason); the reason is printed
  mismatch  first differing offset, both lengths and a hex context are shown
  missing   a stream with payload on one side only

One line is printed per flow that is not ok (every flow with -v), then
`N passed, M failed` (passed = ok + gap + known, failed = mismatch + missing).
Exit status: 0 all passed, 1 failures (or a tool failed), 2 usage error,
77 skipped (tshark or ../shared absent).

Options:
  -v, --verbose   print every flow, and the count of each class
  -j N            captures processed in parallel (default 2)
  --mxray PATH    the mxray binary (default <repo>/build/mxray)
  --known FILE    known-differences file (default tests/oracle/compare_streams.known)
"""
import json
import os
import re
import shutil
import sys
import tempfile

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402
from oracle.common import fmt_ep, norm_addr, run  # noqa: E402

MAIL_PORTS = {25, 587, 465, 110, 995, 143, 993}
BATCH = 64
# What tshark's follow prints where the receiver acknowledged bytes that the
# capture lacks (one chunk, with the C string's NUL).
MARKER = re.compile(rb"\[(\d+) bytes? missing in capture file\]\x00?")


# Flow states, worst last: a flow takes the worst state of its directions.
ORDER = ["ok", "gap", "known", "mismatch", "missing"]
PASSED = {"ok", "gap", "known"}


def parse_node(text):
    """'addr:port', '[v6]:port' or 'v6:port' -> (addr, port), or None."""
    text = text.strip()
    if ":" not in text:
        return None
    addr, _, port = text.rpartition(":")
    if not addr or addr == "[]" or not port.isdigit():
        return None
    return (norm_addr(addr), int(port))



def last_value(field):
    """The innermost of a multi-valued tshark field (tunnels, ICMP errors)."""
    return common.last_value(field, ",")


# ---------------------------------------------------------------- tshark

def tshark_list(path):
    """tcp.stream -> dict(first endpoints, first frame, payload sum)."""
    cmd = ["tshark", "-r", path, "-T", "fields", "-E", "separator=/t",
           "-e", "tcp.stream", "-e", "ip.src", "-e", "ipv6.src",
           "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst",
           "-e", "tcp.dstport", "-e", "frame.number", "-e", "tcp.len",
           "-Y", "tcp"]
    res = run(cmd)
    streams = {}
    for line in res.stdout.decode("utf-8", "replace").splitlines():
        f = line.split("\t")
        if len(f) < 9 or not f[0].strip():
            continue
        try:
            sid = int(f[0].split(",")[0])
        except ValueError:
            continue
        length = 0
        for v in f[8].split(","):
            if v.strip().isdigit():
                length += int(v)
        st = streams.get(sid)
        if st is None:
            src = last_value(f[2]) or last_value(f[1])
            dst = last_value(f[5]) or last_value(f[4])
            try:
                sport = int(f[3].split(",")[0])
                dport = int(f[6].split(",")[0])
            except ValueError:
                continue
            st = streams[sid] = {
                "a": (norm_addr(src), sport), "b": (norm_addr(dst), dport),
                "frame": int(f[7]) if f[7].isdigit() else 0, "tcp_len": 0}
        st["tcp_len"] += length
    if not streams and res.returncode != 0:
        err = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError("tshark failed (%d): %s" % (res.returncode,
                                                      err[-1] if err else ""))
    return streams


def tshark_follow(path, sids):
    """Raw data of each stream: sid -> {n0, n1: endpoints; d0, d1: bytes;
    g0, g1: gaps tshark marked}; index 0 is the first packet's sender."""
    out = {}
    sids = sorted(sids)
    for i in range(0, len(sids), BATCH):
        cmd = ["tshark", "-r", path, "-q"]
        for sid in sids[i:i + BATCH]:
            cmd += ["-z", "follow,tcp,raw,%d" % sid]
        res = run(cmd)
        cur = None
        chunks = None
        for line in res.stdout.decode("ascii", "replace").splitlines():
            if line.startswith("Filter: tcp.stream eq "):
                sid = int(line.split()[-1])
                cur = out[sid] = {"n0": None, "n1": None}
                chunks = ([], [])
                cur["chunks"] = chunks
                continue
            if cur is None:
                continue
            if line.startswith("Node 0: "):
                cur["n0"] = parse_node(line[8:])
            elif line.startswith("Node 1: "):
                cur["n1"] = parse_node(line[8:])
            elif line.startswith("===") or line.startswith("Follow:"):
                continue
            else:
                side = 1 if line.startswith("\t") else 0
                hexs = line.strip()
                if not hexs:
                    continue
                try:
                    chunks[side].append(bytes.fromhex(hexs))
                except ValueError:
                    continue
        missing = [s for s in sids[i:i + BATCH] if s not in out]
        if missing and res.returncode != 0:
            err = res.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError("tshark follow failed (%d): %s" % (
                res.returncode, err[-1] if err else ""))
    for st in out.values():
        for side, chunks in enumerate(st.pop("chunks")):
            st["d%d" % side], st["g%d" % side] = unmark(chunks)
    return out


def unmark(chunks):
    """Joins one direction's chunks, taking out the chunks that are tshark's
    "[N bytes missing in capture file]" markers.  Returns (data, gaps), gaps
    as [(stream offset, len)] like mxray's (offsets count earlier gaps)."""
    data, gaps, pos = [], [], 0
    for c in chunks:
        mk = MARKER.fullmatch(c)
        if mk:
            gaps.append((pos, int(mk.group(1))))
            pos += int(mk.group(1))
        else:
            data.append(c)
            pos += len(c)
    return b"".join(data), gaps


# ---------------------------------------------------------------- compare

def hexctx(data, off, before=8, after=8):
    lo = max(0, off - before)
    piece = data[lo:off + after]
    hx = " ".join("%02x" % b for b in piece) or "(end)"
    asc = "".join(chr(b) if 32 <= b < 127 else "." for b in piece)
    return "@%d: %s |%s|" % (lo, hx, asc)


def first_diff(a, b):
    n = min(len(a), len(b))
    i = 0
    step = 4096
    while i < n and a[i:i + step] == b[i:i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


def diff_text(t, m):
    off = first_diff(t, m)
    return ("first difference at offset %d (tshark %d bytes, mxray %d bytes);"
            " tshark %s; mxray %s" % (off, len(t), len(m), hexctx(t, off),
                                       hexctx(m, off)))


def fmt_gaps(gaps):
    return "[%s]" % " ".join("%d+%d" % g for g in gaps)


def interior(gaps, datalen):
    """The gaps with data after them (a trailing gap, known from an ACK
    alone, is something tshark never marks)."""
    out, before = [], 0
    for off, ln in sorted(gaps):
        if off - before < datalen:
            out.append((off, ln))
        before += ln
    return out


def check_dir(t, tg, m, mg):
    """Compares one direction: tshark data t with its marked gaps tg, mxray
    data m with its gaps mg (stream offsets).  Returns (state, text)."""
    if not tg and not mg:
        if t == m:
            return "ok", "%d bytes equal" % len(t)
        return "mismatch", diff_text(t, m)
    gtxt = "gaps tshark %s, mxray %s" % (fmt_gaps(tg), fmt_gaps(mg))
    if t == m:
        if interior(tg, len(t)) != interior(mg, len(m)):
            return "gap", "%d bytes equal, but the gaps sit differently: %s" % (len(t), gtxt)
        if sorted(tg) == sorted(mg):
            return "gap", "%d bytes equal, gaps agree with tshark's markers %s" % (
                len(t), fmt_gaps(mg))
        return "gap", "%d bytes equal, interior gaps agree (%s)" % (len(t), gtxt)
    if mg and not tg:
        # tshark may hold the bytes mxray reports missing: take the spans out.
        parts, pos = [], 0
        for off, ln in sorted(mg):
            parts.append(t[pos:off])
            pos = max(pos, off + ln)
        parts.append(t[pos:])
        if b"".join(parts) == m:
            return "gap", ("tshark holds the %d byte(s) mxray reports missing;"
                           " with those spans taken out the %d bytes are equal (%s)"
                           % (sum(g[1] for g in mg), len(m), gtxt))
    return "mismatch", "%s; %s" % (diff_text(t, m), gtxt)


def known_key(f):
    """A known-file line capture<TAB>stream<TAB>c2s|s2c|*<TAB>reason:
    ((capture, stream, direction), reason), or None when malformed."""
    if len(f) < 4 or not f[1].strip().isdigit() or f[2].strip() not in ("c2s", "s2c", "*"):
        return None
    return (f[0].strip(), int(f[1]), f[2].strip()), "\t".join(f[3:]).strip()


class Known:
    """Looks up known differences of one capture and remembers which were used."""

    def __init__(self, table, cap):
        self.table, self.cap, self.used = table, cap, set()

    def reason(self, sid, direction):
        if sid is None:
            return None
        for key in ((self.cap, sid, direction), (self.cap, sid, "*")):
            if key in self.table:
                self.used.add(key)
                return self.table[key]
        return None


def check_capture(job):
    """Returns (results, used known keys); results are (state, line)."""
    cap, path, opts = job
    known = Known(opts["known"], cap)
    results = []
    tmp = tempfile.mkdtemp(prefix="compare-streams.")
    try:
        src = common.gunzip(path, tmp)
        sdir = os.path.join(tmp, "streams")
        res = run([opts["mxray"], "-q", "--streams", sdir, src])
        index = []
        err = common.mxray_failed(res)
        try:
            with open(os.path.join(sdir, "index.json"), encoding="utf-8") as fh:
                index = json.load(fh)["streams"]
        except (OSError, ValueError, KeyError) as e:
            err = err or "mxray index.json unreadable: %s" % e
        if err:
            results.append(("missing", "missing   %s  %s" % (cap, err)))
        listing = tshark_list(src)

        # mxray streams by endpoint pair, in order of first frame.
        mx_by_key = {}
        for s in index:
            cl = (norm_addr(s["client"]), int(s["client_port"]))
            sv = (norm_addr(s["server"]), int(s["server_port"]))
            s["_cl"], s["_sv"] = cl, sv
            mx_by_key.setdefault(frozenset((cl, sv)), []).append(s)
        for lst in mx_by_key.values():
            lst.sort(key=lambda s: s.get("first_frame", 0))
        mx_ports = {frozenset((s["_cl"][1], s["_sv"][1])) for s in index}

        # Mail-port streams with payload, and any other mxray might list.
        wanted = set()
        for sid, st in listing.items():
            ports = {st["a"][1], st["b"][1]}
            if (ports & MAIL_PORTS and st["tcp_len"] > 0) or \
                    frozenset(ports) in mx_ports:
                wanted.add(sid)
        follow = tshark_follow(src, wanted)

        ts_by_key = {}
        for sid in sorted(wanted):
            st = listing[sid]
            fo = follow.get(sid, {"n0": None, "n1": None, "d0": b"", "d1": b"",
                                  "g0": [], "g1": []})
            n0, n1 = fo["n0"], fo["n1"]
            if n0 is None or n1 is None or n0 == n1:
                n0, n1 = st["a"], st["b"]
            fo["n0"], fo["n1"] = n0, n1
            fo["frame"] = st["frame"]
            ts_by_key.setdefault(frozenset((n0, n1)), []).append((sid, fo))

        # Pair them in order; an mxray flow left over is named after the
        # tshark stream of the same endpoints that it falls in, if any.
        flows = []
        for key, tl in ts_by_key.items():
            ml = mx_by_key.pop(key, [])
            for i, (sid, fo) in enumerate(tl):
                flows.append((sid, fo, ml[i] if i < len(ml) else None))
            for m in ml[len(tl):]:
                near = [sid for sid, fo in tl if fo["frame"] <= m.get("first_frame", 0)]
                flows.append((near[-1] if near else tl[0][0], None, m))
        for ml in mx_by_key.values():
            for m in ml:
                flows.append((None, None, m))

        for sid, fo, m in flows:
            results.append(compare_flow(cap, sid, fo, m, sdir, known))
        results.sort(key=lambda r: r[2])
    except Exception as e:  # our own failure: report, count as failed
        results.append(("missing", "missing   %s  error: %s: %s" % (
            cap, type(e).__name__, e), 0))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [(r[0], r[1]) for r in results], known.used


def compare_flow(cap, sid, fo, m, sdir, known):
    """Classifies one flow: sid/fo tshark's stream (fo None: the mxray flow
    has no tshark stream of its own), m mxray's (None: none).  Returns
    (state, line, sort key)."""
    if m is not None:
        title = "%s -> %s" % (fmt_ep(m["_cl"]), fmt_ep(m["_sv"]))
        mframe = m.get("first_frame", 0)
    else:
        title = "%s -> %s" % (fmt_ep(fo["n0"]), fmt_ep(fo["n1"]))
        mframe = 0
    where = "%s  stream %s  %s" % (cap, "-" if sid is None else sid, title)
    sortkey = ((1 << 40) if sid is None else sid, 1 if fo is None else 0, mframe)

    if fo is None:
        what = "mxray flow %s (first frame %s, %d + %d bytes) has no tshark" \
            " stream of its own" % (m.get("flow"), mframe, m["c2s"]["bytes"],
                                    m["s2c"]["bytes"])
        reason = known.reason(sid, "*")
        if reason:
            return ("known", "known     %s  %s: known: %s" % (where, what, reason), sortkey)
        return ("missing", "missing   %s  %s" % (where, what), sortkey)
    if m is None:
        if not fo["d0"] and not fo["d1"]:
            return ("ok", "ok        %s  no payload either side" % where, sortkey)
        what = "tshark stream (first frame %d, %d + %d bytes), mxray lists no" \
            " flow" % (fo["frame"], len(fo["d0"]), len(fo["d1"]))
        reason = known.reason(sid, "*")
        if reason:
            return ("known", "known     %s  %s: known: %s" % (where, what, reason), sortkey)
        return ("missing", "missing   %s  %s" % (where, what), sortkey)

    n0, n1 = (fo["d0"], fo["g0"]), (fo["d1"], fo["g1"])
    if fo["n0"] == m["_cl"] or fo["n1"] == m["_sv"]:
        tdir = {"c2s": n0, "s2c": n1}
    else:
        tdir = {"c2s": n1, "s2c": n0}
    states, notes = [], []
    for d in ("c2s", "s2c"):
        info = m[d]
        try:
            with open(os.path.join(sdir, info["file"]), "rb") as fh:
                mdata = fh.read()
        except OSError:
            mdata = b""
        t, tg = tdir[d]
        gaps = [(int(g["offset"]), int(g["len"])) for g in info.get("gaps", [])]
        if len(mdata) != info.get("bytes", len(mdata)):
            st, txt = "mismatch", "file holds %d bytes, index says %d" % (
                len(mdata), info["bytes"])
        else:
            st, txt = check_dir(t, tg, mdata, gaps)
        if st == "mismatch":
            reason = known.reason(sid, d)
            if reason:
                st, txt = "known", "known: %s [%s]" % (reason, txt)
        states.append(st)
        notes.append("%s: %s" % (d, txt))
    worst = max(states, key=ORDER.index)
    return (worst, "%-9s %s  %s" % (worst, where, "; ".join(notes)), sortkey)




# ---------------------------------------------------------------- main

class StreamsCheck(common.TsharkCheck):
    name = "compare-streams"
    description = "Check mxray's TCP stream reassembly against tshark."
    epilog = "See the docstring of this script for the classification."
    proto = "streams"
    known_file = "compare_streams.known"
    known_parse, known_want = staticmethod(known_key), "capture<TAB>stream<TAB>c2s|s2c|*<TAB>reason"
    names_in_repo = False
    full = False
    states = ORDER
    quiet = ("ok",)
    passed = PASSED
    failed = ("mismatch", "missing")

    def skip_early(self):
        return super().skip_early() or common.shared_absent()

    def default_captures(self):
        if not os.path.isfile(os.path.join(common.CORPUS, "MANIFEST.tsv")):
            print("SKIP: %s/MANIFEST.tsv is absent" % common.CORPUS)
            return common.SKIP
        paths = []
        for rel in common.manifest_captures():
            p = os.path.join(common.CORPUS, rel)
            if not os.path.isfile(p):
                print("error: listed capture missing: %s" % rel, file=sys.stderr)
                return 1
            paths.append(os.path.realpath(p))
        return paths

    def check_capture(self, job):
        return check_capture(job)

    def unneeded(self, key):
        return "note: known entry not needed any more: %s\tstream %d\t%s" % key

    def verbose_counts(self, counts):
        return "(ok %d, gap %d, known %d, mismatch %d, missing %d)" % tuple(
            counts[s] for s in ORDER)


if __name__ == "__main__":
    sys.exit(StreamsCheck().main())
