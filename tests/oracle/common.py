"""common: what the oracle checks of tests/oracle/ share.

Where things are (the repository, ../shared/corpus and its MANIFEST.tsv, the
project's pcaps/), how mxray and tshark are run and read, the known-file
format, the set-up every check does (SIGPIPE, --mxray, "is it built", the
skip when ../shared is absent) and the closing `N passed, M failed` line with
its exit status.  Also the two drivers the tshark comparisons run on:
TsharkCheck (the main of compare_smtp/pop3/imap/tls/streams: options,
captures, a private copy of mxray, captures in parallel, the counts) and
ProtoCheck (their loop over one capture's streams for SMTP, POP3 and IMAP:
mxray's flows put into tshark's streams, each compared, tshark run again
with other preferences, the known file).
"""
import argparse
import base64
import difflib
import glob
import gzip
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.realpath(__file__))      # tests/oracle
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
CORPUS = os.path.join(SHARED, "corpus")
ORACLES = os.path.join(CORPUS, "oracles")
SKIP = 77           # exit status: skipped (ctest's SKIP_RETURN_CODE)
AGG = "\x1f"        # tshark's aggregator for several values in one frame
CONTEXT = 3         # items shown on either side of the first difference
FULL = False        # --full: whole sequences, not just the first difference
OOO_PREFS = ("-o", "tcp.reassemble_out_of_order:TRUE")
OOO_REASON = ("tshark's TCP leaves out-of-order segments out by default (it flags"
              " them as retransmissions and does not dissect them); with -o"
              " tcp.reassemble_out_of_order:TRUE tshark agrees")


# ---------------------------------------------------------------- set-up

def start():
    """What every check does first: a closed pipe (| head) ends it quietly."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def add_mxray(ap):
    """The --mxray option, <repo>/build/mxray by default."""
    ap.add_argument("--mxray", default=os.path.join(REPO, "build", "mxray"))


def parser(doc):
    """What a check does first (start), and its argument parser, with the
    check's docstring doc as its help and the --mxray option."""
    start()
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_mxray(ap)
    return ap


def not_built(mxray):
    """1 with a message when mxray is not an executable, else None."""
    if os.access(mxray, os.X_OK):
        return None
    print("error: %s is not built (cmake --build build --target mxray)" % mxray,
          file=sys.stderr)
    return 1


def shared_absent():
    """SKIP with a message when ../shared is absent, else None."""
    if os.path.isdir(SHARED):
        return None
    print("SKIP: %s is absent; the shared capture corpus is needed" % SHARED)
    return SKIP


def summary(passed, failed, tail=""):
    """Prints `N passed, M failed` (and tail); returns the exit status."""
    print("%d passed, %d failed%s" % (passed, failed, tail))
    return 1 if failed else 0


def private_mxray(mxray, prefix):
    """A private copy of mxray in a new temporary folder, so that a
    concurrent rebuild cannot pull it away mid-run: (folder, copy)."""
    bindir = tempfile.mkdtemp(prefix=prefix)
    copy = os.path.join(bindir, "mxray")
    try:
        shutil.copy2(os.path.realpath(mxray), copy)
    except BaseException:
        shutil.rmtree(bindir, ignore_errors=True)
        raise
    return bindir, copy


# ---------------------------------------------------------------- running

def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def mxray_failed(res, last_line=False):
    """The error text of an mxray run that exited other than 0 (clean) or 3
    (damaged input), else None: the end of its standard error, or with
    last_line its last line."""
    if res.returncode in (0, 3):
        return None
    if last_line:
        err = res.stderr.decode("utf-8", "replace").strip().splitlines()
        return "mxray exited %d%s" % (res.returncode, ": " + err[-1] if err else "")
    return "mxray exited %d: %s" % (res.returncode, res.stderr.decode(
        "utf-8", "replace").strip()[-200:])


def run_mxray(mxray, *args):
    """mxray's standard output (bytes); RuntimeError when it failed."""
    res = run([mxray] + list(args))
    err = mxray_failed(res)
    if err:
        raise RuntimeError(err)
    return res.stdout


def mxray_records(mxray, *args):
    """The records mxray writes with `--json -` (args give it), in order;
    RuntimeError when it failed, ValueError on a line that is not JSON."""
    return [json.loads(line) for line in run_mxray(mxray, *args).splitlines()
            if line.strip()]


def gunzip(path, folder, name="capture.pcap"):
    """The capture to read: path, or a `.gz` one decompressed into folder."""
    if not path.endswith(".gz"):
        return path
    dest = os.path.join(folder, name)
    with gzip.open(path, "rb") as fi, open(dest, "wb") as fo:
        shutil.copyfileobj(fi, fo)
    return dest


# ---------------------------------------------------------------- captures

def pcaps():
    """The project's own captures: pcaps/**/*.pcap and *.pcapng, sorted."""
    paths = []
    for pat in ("*.pcap", "*.pcapng"):
        paths += glob.glob(os.path.join(REPO, "pcaps", "**", pat), recursive=True)
    return sorted(paths)


def tls_ca_args(cap):
    """--tls-ca for a capture of pcaps/, so that no output depends on the
    machine's trust store: the CA file kept beside it (NAME.ca.pem, the
    tls-posture/ captures), else "none" (trust not judged)."""
    ca = re.sub(r"\.pcap(ng)?$", "", cap) + ".ca.pem"
    return ["--tls-ca", ca if os.path.isfile(ca) else "none"]


def manifest():
    """The rows of ../shared/corpus/MANIFEST.tsv as dicts, column -> value."""
    with open(os.path.join(CORPUS, "MANIFEST.tsv"), encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in fh]


def manifest_captures(word=None):
    """The corpus's captures (paths relative to it), in MANIFEST.tsv's
    order; with word, only those whose `contents` mention it."""
    return [r["path"].strip() for r in manifest() if r.get("path", "").strip()
            and (word is None or word in r.get("contents", "").lower())]


def default_captures(word):
    """pcaps/ and the corpus's captures whose `contents` mention word (only
    pcaps/, with a note, when the corpus has no MANIFEST.tsv)."""
    paths = [os.path.realpath(p) for p in pcaps()]
    if not os.path.isfile(os.path.join(CORPUS, "MANIFEST.tsv")):
        print("note: %s is absent; checking only <repo>/pcaps"
              % os.path.join(CORPUS, "MANIFEST.tsv"))
        return paths
    return paths + [os.path.realpath(os.path.join(CORPUS, p)) for p in manifest_captures(word)]


def resolve(arg):
    """A capture named on the command line, relative to the current folder,
    the repository, tests/oracle/ or the corpus; None when not found."""
    cands = [arg] if os.path.isabs(arg) else [
        os.path.join(os.getcwd(), arg), os.path.join(REPO, arg),
        os.path.join(HERE, arg), os.path.join(CORPUS, arg)]
    for c in cands:
        if os.path.isfile(c):
            return os.path.realpath(c)
    return None


def cap_name(path, repo=True):
    """A capture's name: relative to the corpus, or (with repo) to the
    repository; else its path."""
    for base in (CORPUS, REPO) if repo else (CORPUS,):
        base = os.path.realpath(base)
        if path.startswith(base + os.sep):
            return os.path.relpath(path, base)
    return path


# ---------------------------------------------------------------- values

def norm_addr(text):
    """Canonical text of an IP address (brackets and zone kept out)."""
    text = (text or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower()


def fmt_ep(ep):
    addr, port = ep
    return ("[%s]:%d" if ":" in addr else "%s:%d") % (addr, port)


def last_value(field, sep=AGG):
    """The innermost of a multi-valued field (tunnels, ICMP errors)."""
    vals = [v for v in field.split(sep) if v]
    return vals[-1] if vals else ""


def split_vals(field):
    return field.split(AGG) if field != "" else []


def printable(v, width):
    """A value for a listing: control characters as '?', width at most."""
    v = "".join(c if c >= " " and c != "\x7f" else "?" for c in v)
    return v if len(v) <= width else v[:width - 3] + "..."


def in_spans(frame, spans):
    return any(a <= frame <= b for a, b in spans)


def list_items(items, fmt, n):
    return ", ".join(fmt(x) for x in items[:n]) + (", ..." if len(items) > n else "")


# ---------------------------------------------------------------- known file

def stream_key(f):
    """A known-file line capture<TAB>stream<TAB>reason: ((capture, stream),
    reason), or None when malformed."""
    if len(f) < 3 or not f[1].strip().isdigit():
        return None
    return (f[0].strip(), int(f[1])), "\t".join(f[2:]).strip()


def load_known(path, parse=stream_key, want="capture<TAB>stream<TAB>reason"):
    """A known-differences file (TSV, # comments) as {key: reason}, each line
    read by parse; a malformed line is reported and left out."""
    known = {}
    if not os.path.exists(path):
        return known
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            entry = parse(line.split("\t"))
            if entry is None:
                sys.stderr.write("%s:%d: bad line (want %s)\n" % (path, n, want))
                continue
            known[entry[0]] = entry[1]
    return known


# ---------------------------------------------------------------- tshark

def tshark_rows(cmd, nfields):
    """Runs a `-T fields` tshark; returns its rows as lists of nfields
    strings.  A field may hold a raw newline: a line that does not start
    with a frame number continues the previous row."""
    res = run(cmd)
    rows = []
    text = res.stdout.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
    for line in text.split("\n"):
        head = line.split("\t", 1)[0]
        if head.isdigit() and line.count("\t") >= nfields - 1:
            rows.append(line)
        elif rows:
            rows[-1] += "\n" + line
    out = []
    for r in rows:
        f = r.split("\t")
        if len(f) > nfields:  # a tab inside the last field
            f = f[:nfields - 1] + ["\t".join(f[nfields - 1:])]
        out.append(f)
    if not out and res.returncode != 0:
        err = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError("tshark failed (%d): %s" % (
            res.returncode, err[-1] if err else ""))
    return out


def tshark_streams(path):
    """tcp.stream -> {"eps": frozenset of both endpoints, "a": first sender,
    "b": its peer, "frame": first frame}."""
    cmd = ["tshark", "-r", path, "-Y", "tcp", "-T", "fields",
           "-E", "separator=/t", "-E", "aggregator=" + AGG,
           "-e", "frame.number", "-e", "tcp.stream",
           "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
           "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport", "-e", "frame.protocols"]
    streams = {}
    for f in tshark_rows(cmd, 9):
        try:
            sid = int(split_vals(f[1])[0])
            sport = int(split_vals(f[4])[0])
            dport = int(split_vals(f[7])[0])
        except (ValueError, IndexError):
            continue
        if sid in streams:
            continue
        # The innermost IP header's addresses: IPv6 in IPv4 (6in4) or IPv4
        # in IPv6 (a tunnel's inner packet), as frame.protocols orders them.
        protos = f[8].split(":")
        v4_inner = "ip" in protos and protos[::-1].index("ip") < (protos[::-1] + ["ipv6"]).index("ipv6")
        a = (norm_addr(last_value(f[2]) if v4_inner else (last_value(f[3]) or last_value(f[2]))), sport)
        b = (norm_addr(last_value(f[5]) if v4_inner else (last_value(f[6]) or last_value(f[5]))), dport)
        streams[sid] = {"eps": frozenset((a, b)), "a": a, "b": b,
                        "frame": int(f[0])}
    return streams


def flows_to_streams(mflows, streams):
    """Puts mxray's flows (number -> dict with cl, sv, frame) into tshark's
    streams: each into the stream with the same endpoint pair whose first
    frame is the last one at or before the flow's first frame.  Returns
    (tcp.stream -> [flows], flows with no such stream)."""
    by_eps = {}
    for sid, st in streams.items():
        by_eps.setdefault(st["eps"], []).append(sid)
    for lst in by_eps.values():
        lst.sort(key=lambda s: streams[s]["frame"])
    per_stream, orphans = {}, []
    for num in sorted(mflows):
        fl = mflows[num]
        cands = by_eps.get(frozenset((fl["cl"], fl["sv"])), [])
        if not cands:
            orphans.append(fl)
            continue
        before = [s for s in cands if streams[s]["frame"] <= fl["frame"]]
        sid = before[-1] if before else cands[0]
        per_stream.setdefault(sid, []).append(fl)
    return per_stream, orphans


def decode_as(ports, proto):
    """tshark's Decode As options for each port: `-d tcp.port==P,proto`."""
    return tuple(x for p in ports for x in ("-d", "tcp.port==%d,%s" % (p, proto)))


# ---------------------------------------------------------------- sequences

def align(a, b):
    """difflib's opcodes aligning two sequences of keys."""
    return difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()


def show_context(mseq, tseq, ops, fmt, width=34, explained=()):
    """Text lines: both sequences side by side around the first unexplained
    difference (everything with --full), each item as fmt gives it.  Marks:
    ">" a difference left unexplained, "~" one explained (the id() of its
    items in explained); runs of explained ones are shortened."""
    pairs, first_bad = [], None
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            for k in range(i2 - i1):
                pairs.append((mseq[i1 + k], tseq[j1 + k], " "))
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            m = mseq[i1 + k] if i1 + k < i2 else None
            t = tseq[j1 + k] if j1 + k < j2 else None
            if (m is None or id(m) in explained) and (t is None or id(t) in explained):
                pairs.append((m, t, "~"))
            else:
                if first_bad is None:
                    first_bad = len(pairs)
                pairs.append((m, t, ">"))
    if first_bad is None:
        return []
    lo = max(0, first_bad - CONTEXT)
    hi = min(len(pairs), first_bad + CONTEXT + 1)
    while hi < len(pairs) and pairs[hi - 1][2] == ">" and hi - first_bad < 12:
        hi += 1
    if FULL:
        lo, hi = 0, len(pairs)
    row = "    %s %-4d %-" + str(width) + "s %s"
    lines = [("      %-4s %-" + str(width) + "s %s") % ("#", "mxray", "tshark")]
    n = lo
    while n < hi:
        m, t, mark = pairs[n]
        end = n
        while end < hi and pairs[end][2] == "~":
            end += 1
        if end - n > 3 and not FULL:
            lines.append(row % ("~", n + 1, fmt(m), fmt(t)))
            lines.append("      ... (%d more explained)" % (end - n - 1))
            n = end
            continue
        lines.append(row % (mark, n + 1, fmt(m), fmt(t)))
        n += 1
    if hi < len(pairs):
        lines.append("      ... (%d more)" % (len(pairs) - hi))
    return lines


# ---------------------------------------------------------------- drivers

class TsharkCheck:
    """The main of a check of mxray against tshark, capture by capture.  A
    check sets the attributes and writes check_capture(job): job is
    (capture name, path, {"mxray": private copy, "known": known file}); it
    returns (results [(state, text)], known keys used)."""

    name = None             # "compare-smtp": temporary folders are named after it
    description = None
    epilog = "See the docstring of this script for the rules."
    proto = None            # "SMTP": the SKIP message says what it compares
    known_file = None       # its default, in tests/oracle/
    known_parse, known_want = staticmethod(stream_key), "capture<TAB>stream<TAB>reason"
    word = None             # MANIFEST.tsv's contents that select corpus captures
    names_in_repo = True    # pcaps/ captures named relative to the repository
    full = True             # whether it has --full
    states = ["ok", "known", "mismatch"]
    quiet = ("ok", "skip")  # states printed only with -v
    passed = ("ok", "known")
    failed = ("mismatch",)

    def default_captures(self):
        """The captures without CAPTURE arguments: paths, or an exit status.
        pcaps/tunnel/ is left out of the mail protocols' comparisons: tshark's
        SOCKS dissector hands a tunnel's payload to the dissector of another
        tunnel of the capture (the SMTP inside a SOCKS5 tunnel shown as POP3,
        the POP3 of the next as SMTP) and repeats its segments under other
        stream numbers; tests/oracle/truth_tunnel.py compares those captures'
        handshakes with tshark and their mail with the lab's truth, and
        compare_streams their bytes."""
        paths = default_captures(self.word)
        if self.word.startswith("tls") or not isinstance(paths, list):
            return paths
        tunnel = os.path.join(REPO, "pcaps", "tunnel") + os.sep
        return [p for p in paths if not p.startswith(os.path.realpath(tunnel))]

    def prepare(self):
        """Done once before the captures are checked."""

    def check_capture(self, job):
        raise NotImplementedError

    def unneeded(self, key):
        return "note: known entry not needed any more: %s\tstream %d" % key

    def verbose_counts(self, counts):
        return "(ok %d, known %d, mismatch %d; skipped %d)" % (
            counts["ok"], counts["known"], counts["mismatch"], counts["skip"])

    def summary(self, counts):
        return summary(sum(counts[s] for s in self.passed), sum(counts[s] for s in self.failed))

    def skip_early(self):
        """An exit status when the check cannot run here, else None."""
        if shutil.which("tshark") is None:
            print("SKIP: tshark not found in PATH; install wireshark's tshark to"
                  " compare %s" % self.proto)
            return SKIP
        return None

    def main(self):
        global FULL
        start()
        ap = argparse.ArgumentParser(description=self.description, epilog=self.epilog)
        ap.add_argument("captures", nargs="*", metavar="CAPTURE")
        ap.add_argument("-v", "--verbose", action="store_true")
        ap.add_argument("-j", type=int, default=2, metavar="N")
        if self.full:
            ap.add_argument("--full", action="store_true")
        add_mxray(ap)
        ap.add_argument("--known", default=os.path.join(HERE, self.known_file))
        args = ap.parse_args()
        FULL = self.full and args.full

        status = self.skip_early() or not_built(args.mxray)
        if status:
            return status
        if args.captures:
            paths = []
            for a in args.captures:
                p = resolve(a)
                if p is None:
                    print("error: capture not found: %s" % a, file=sys.stderr)
                    return 2
                paths.append(p)
        else:
            paths = self.default_captures()
            if isinstance(paths, int):
                return paths
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            print("error: capture missing: %s" % missing[0], file=sys.stderr)
            return 1

        known = load_known(args.known, self.known_parse, self.known_want)
        self.prepare()
        counts = dict.fromkeys(self.states + ["skip"], 0)
        used_known = set()
        bindir, mxray = private_mxray(args.mxray, self.name + "-bin.")
        try:
            opts = {"mxray": mxray, "known": known}
            jobs = [(cap_name(p, self.names_in_repo), p, opts) for p in paths]
            with ThreadPoolExecutor(max_workers=max(1, args.j)) as pool:
                for results, used in pool.map(self.check_capture, jobs):
                    used_known |= used
                    for state, text in results:
                        counts[state] += 1
                        if args.verbose or state not in self.quiet:
                            print(text, flush=True)
        finally:
            shutil.rmtree(bindir, ignore_errors=True)
        ran = {j[0] for j in jobs}
        for key in sorted(k for k in known if k[0] in ran and k not in used_known):
            print(self.unneeded(key))
        if args.verbose:
            print(self.verbose_counts(counts))
        return self.summary(counts)


class ProtoCheck(TsharkCheck):
    """A mail protocol's commands and replies against tshark's, stream by
    stream (compare_smtp, compare_pop3, compare_imap).  A check sets the
    attributes and writes the methods that read mxray and tshark, merge and
    compare; this loop does the rest."""

    tshark_proto = None     # "smtp": for Decode As
    ports = ()              # the ports tshark reads as the protocol anyway
    what = None             # "SMTP command or reply": a skipped stream lacks it
    counted = ()            # ("commands", "replies"): the counts printed
    count_keys = ()         # ("cmds", "replies"): their lists, mxray's and tshark's
    empty_flow = {}         # merged flows when there are none (see merge)

    def mxray_flows(self, mxray, src, tmp):
        """flow number -> dict(cl, sv, frame, flow, ...)."""
        raise NotImplementedError

    def tshark(self, src, tmp, prefs):
        """tcp.stream -> tshark's reading of it."""
        raise NotImplementedError

    def has_mx(self, fl):
        """Whether an mxray flow (or merged flows) holds the protocol."""
        raise NotImplementedError

    def has_ts(self, ts):
        """Whether tshark's reading of a stream holds the protocol."""
        raise NotImplementedError

    def ts_any(self, tsall):
        """Whether tshark found the protocol anywhere in the capture."""
        return any(self.has_ts(t) for t in tsall.values())

    def empty_ts(self):
        """tshark's reading of a stream where it found nothing."""
        raise NotImplementedError

    def merge(self, fls):
        """The mxray flows that fall in one tshark stream, taken together,
        starting from empty_flow: lists and byte strings joined, dicts and
        sets united; of the other keys the first value that is not None."""
        merged = {k: v.copy() if isinstance(v, (list, dict, set)) else v
                  for k, v in self.empty_flow.items()}
        for fl in fls:
            for k, v in merged.items():
                if isinstance(v, (list, bytes)):
                    merged[k] = v + fl[k]
                elif isinstance(v, (dict, set)):
                    v.update(fl[k])
                elif v is None:
                    merged[k] = fl[k]
        return merged

    def numbers(self, merged, ts):
        """The counts printed: (mxray's, tshark's) for each of counted."""
        return tuple((len(merged[k]), len(ts[k])) for k in self.count_keys)

    def compare_stream(self, merged, ts):
        """(state, reasons, detail lines) of one stream."""
        raise NotImplementedError

    def reruns(self, src, sid, decode):
        """tshark run again with other preferences when a stream does not
        agree: [(name, prefs, reasons when it then agrees)]."""
        return [("ooo", OOO_PREFS, lambda: [OOO_REASON])]

    def check_capture(self, job):
        """Returns (results, used known keys); results are (state, text)."""
        cap, path, opts = job
        results, used = [], set()
        tmp = tempfile.mkdtemp(prefix=self.name + ".")
        try:
            src = gunzip(path, tmp)
            mflows = self.mxray_flows(opts["mxray"], src, tmp)
            # Ports where mxray found the protocol by content (nDPI): tshark
            # decodes them only when told to (Decode As), so that both read
            # the same streams.
            extra = sorted({f["sv"][1] for f in mflows.values()
                            if f["sv"][1] not in self.ports and self.has_mx(f)})
            decode = decode_as(extra, self.tshark_proto)
            tsall = self.tshark(src, tmp, decode)
            if not self.ts_any(tsall) and not any(self.has_mx(f) for f in mflows.values()):
                results.append(("skip", "skip      %s  no %s on either side" % (cap, self.what)))
                return results, used
            streams = tshark_streams(src)
            per_stream, orphans = flows_to_streams(mflows, streams)

            again = {}
            for sid in sorted(set(per_stream) | set(tsall)):
                fls = per_stream.get(sid, [])
                ts = tsall[sid] if sid in tsall else self.empty_ts()
                merged = self.merge(fls)
                if fls:
                    title = "%s -> %s" % (fmt_ep(fls[0]["cl"]), fmt_ep(fls[0]["sv"]))
                    names = "mxray flow %s" % "+".join(str(f["flow"]) for f in fls)
                else:
                    st = streams.get(sid)
                    title = "%s -> %s" % (fmt_ep(st["a"]), fmt_ep(st["b"])) if st else "?"
                    names = "no mxray flow"
                where = "%s  stream %d  %s  (%s)" % (cap, sid, title, names)
                counts = ", ".join("%s %d/%d" % ((name,) + n) for name, n in
                                   zip(self.counted, self.numbers(merged, ts)))
                if not (self.has_mx(merged) or self.has_ts(ts)):
                    results.append(("skip", "skip      %s  no %s on either side"
                                    % (where, self.what)))
                    continue
                state, reasons, details = self.compare_stream(merged, ts)
                for name, prefs, why in self.reruns(src, sid, decode) \
                        if state == "mismatch" else []:
                    if name not in again:
                        try:
                            again[name] = self.tshark(src, tmp, tuple(prefs) + decode)
                        except RuntimeError:
                            again[name] = {}
                    if sid not in again[name]:
                        continue
                    st2, rs2, _ = self.compare_stream(merged, again[name][sid])
                    if st2 == "mismatch":
                        continue
                    state, details, reasons = "known", [], why() + rs2
                    break
                if state == "mismatch" and (cap, sid) in opts["known"]:
                    used.add((cap, sid))
                    state = "known"
                    reasons = ["listed: " + opts["known"][(cap, sid)]] + reasons
                    details = []
                text = "%-9s %s  %s (mxray/tshark)" % (state, where, counts)
                for r in reasons:
                    text += "\n  %s %s" % ("known:" if state == "known" else "note:", r)
                for d in details:
                    text += "\n" + d
                results.append((state, text))
            for fl in orphans:
                if self.has_mx(fl):
                    results.append(("mismatch", "mismatch  %s  stream -  %s -> %s  (mxray"
                                    " flow %d): tshark lists no TCP stream with these endpoints"
                                    % (cap, fmt_ep(fl["cl"]), fmt_ep(fl["sv"]), fl["flow"])))
        except Exception as e:  # our own failure: report, count as failed
            results.append(("mismatch", "mismatch  %s  error: %s: %s" % (
                cap, type(e).__name__, e)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return results, used


def same_as_original(name, st0, rec0, st, rec):
    """For tests that rewrite a capture (offload, encapsulations): prints a FAIL
    line when the rewritten capture's exit status or records differ from the
    original's (the first differing record pair); returns the failures."""
    fails = 0
    if st != st0:
        print("FAIL %s: exit %d, the original %d" % (name, st, st0))
        fails += 1
    if rec != rec0:
        diff = next(((a, b) for a, b in zip(rec0, rec) if a != b), (len(rec0), len(rec)))
        print("FAIL %s: records differ from the original's: %s" % (name, json.dumps(diff)[:600]))
        fails += 1
    return fails


def mx_flow_start(r, **more):
    """The dict an mxray flow_start record opens (client and server as
    endpoints, first frame, flow number), with more keys."""
    return dict({"cl": (norm_addr(r["client"]), int(r["client_port"])),
                 "sv": (norm_addr(r["server"]), int(r["server_port"])),
                 "frame": r.get("frames", [0])[0], "flow": r["flow"]}, **more)


def mx_flows(mxray, args, path, start_flow, add):
    """mxray's flows: runs `mxray -q --json - [args] path`; a flow_start
    record opens a flow (start_flow(r) gives its dict), every other record
    of a flow is given to add(flow, record, type, (first frame, last
    frame)).  Lines that are not JSON are passed over."""
    out = run_mxray(mxray, "-q", "--json", "-", *(list(args) + [path]))
    flows = {}
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        t = r.get("type", "")
        if "flow" not in r:
            continue
        if t == "flow_start":
            flows[r["flow"]] = start_flow(r)
            continue
        fl = flows.get(r["flow"])
        if fl is None:
            continue
        fr = r.get("frames") or [0]
        add(fl, r, t, (fr[0], fr[-1]))
    return flows


# ---------------------------------------------------------------- truth files

def turn_bytes(turn):
    """A transcript turn's bytes: its "b64" decoded, or its "text"."""
    if "b64" in turn:
        return base64.b64decode(turn["b64"])
    return turn["text"].encode("utf-8")


def clear_turns(session):
    """A session's turns in clear, as (dir "C" or "S", bytes), and the
    number of server turns marked injected: cleartext the server wrote after
    its yes to STARTTLS/STLS, before the handshake, which answers no command
    and is left out.  Turns with tls true are not visible to any dissector."""
    turns, server_injected = [], 0
    for turn in session["transcript"]:
        if turn.get("tls"):
            continue
        if turn.get("injected") and turn["dir"] == "S":
            server_injected += 1
            continue
        turns.append((turn["dir"], turn_bytes(turn)))
    return turns, server_injected


def backend_view(session):
    """A session as the mail server saw it.  Behind a proxy (the session's
    "proxy", scripts/lab/scenarios/scen_proxy.py), the dissected leg is the
    proxy's connection to the server: its port is the backend's, and TLS
    that ended at the proxy leaves the whole dialogue in clear there (after
    the PROXY header, which mxray reads apart).  Other sessions unchanged."""
    p = session.get("proxy")
    if not p:
        return session
    s = dict(session, server_port=p["backend_port"])
    if p.get("tls_at_proxy"):
        s["tls"] = "none"
        s["transcript"] = [dict(t, tls=False) for t in session["transcript"]]
    return s


def truth_files(args):
    """The truth files named, or pcaps/**/*.truth.json."""
    return args or sorted(glob.glob(os.path.join(REPO, "pcaps", "**", "*.truth.json"),
                                    recursive=True))


def note_turns(flow, r):
    """Keeps in mxray's flow (a dict) what check_turns needs of record r:
    the first frame of its first command, and its session's server_closed."""
    t = r["type"]
    if t.endswith(".command") and flow.get("first_command_frame") is None:
        flow["first_command_frame"] = r["frames"][0]
    elif t.endswith(".session"):
        flow["server_closed"] = r.get("server_closed")


def check_turns(s, flow):
    """Talking out of turn (issue 26), one session: the lab marks a client
    that sent before reading the greeting "spoke_first", and mxray's flow must
    then carry CLIENT_SPOKE_FIRST naming the frame of its first command (no
    other flow may); it marks a session the server ended on its own
    "server_closed" ({"code": 421} or {"status": "-ERR"|"BYE"}, "unsolicited"),
    and mxray's session record must have server_closed with that status,
    "answers" absent exactly when unsolicited (no other session may have one)."""
    problems, idx = [], s["index"]
    early = flow["anomalies"].get("CLIENT_SPOKE_FIRST")
    first = flow.get("first_command_frame")
    if s.get("spoke_first"):
        if not early:
            problems.append(f"session {idx}: the client spoke first, no CLIENT_SPOKE_FIRST")
        elif early not in ([first], [first, first]):
            problems.append(f"session {idx}: CLIENT_SPOKE_FIRST names frames {early}, the first "
                            f"command is in frame {first}")
    elif early:
        problems.append(f"session {idx}: CLIENT_SPOKE_FIRST {early}, but the client waited its turn")
    want, have = s.get("server_closed"), flow.get("server_closed")
    if want:
        status = str(want.get("status", want.get("code")))
        if not have or have.get("status") != status or ("answers" not in have) != want["unsolicited"]:
            problems.append(f"session {idx}: the server closed it ({want}), mxray says {have}")
    elif have:
        problems.append(f"session {idx}: mxray says the server closed it ({have}), the truth does not")
    return problems


def check_injection(index, truth, mine, shown, server_injected, anom,
                    cmd="STARTTLS", turns="server turn(s)"):
    """The STARTTLS injection checks of one session (the CVE-2011-0411
    pattern): the commands injected after cmd (truth's, mxray's, mxray's as
    printed) must agree, with a STARTTLS_CLIENT_INJECTION anomaly when there
    are any; server turns marked injected need STARTTLS_SERVER_INJECTION.
    A session without injection must have neither anomaly."""
    problems = []
    if mine != truth:
        problems.append("session %d: commands injected after %s differ:\n      truth %s\n"
                        "      mxray %s" % (index, cmd, truth, shown))
    for name, want, what in (
            ("STARTTLS_CLIENT_INJECTION", bool(truth), "commands %s after %s" % (truth, cmd)),
            ("STARTTLS_SERVER_INJECTION", bool(server_injected),
             "%d %s marked injected" % (server_injected, turns))):
        if want and name not in anom:
            problems.append("session %d: no %s anomaly, but the truth has %s" % (index, name, what))
        elif not want and name in anom:
            problems.append("session %d: %s anomaly (frames %s), but the truth has no such"
                            " injection" % (index, name, anom[name]))
    return problems


def report(rel, problems):
    """A FAIL block for a file with problems; whether it passed."""
    if not problems:
        return True
    print("FAIL %s" % rel)
    for p in problems:
        print("     " + p)
    return False


def truth_main(doc, proto, ports, flows_of, check_session, ok_detail=lambda s, port: ""):
    """The main of truth_pop3 and truth_imap: every session of proto in the
    truth files against the mxray flow on its server port in the same order
    (flows_of(mxray, capture) gives them, check_session(session, flow) the
    problems); one FAIL block per truth file that disagrees."""
    ap = parser(doc)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("truth", nargs="*")
    a = ap.parse_args()
    status = not_built(a.mxray)
    if status:
        return status
    passed = failed = sessions = 0
    for tf in truth_files(a.truth):
        if not os.path.isfile(tf):
            print("error: no such truth file: %s" % tf, file=sys.stderr)
            return 2
        with open(tf, encoding="utf-8") as fh:
            t = json.load(fh)
        # sessions through a SOCKS or HTTP proxy: tests/oracle/truth_tunnel.py
        mine = [backend_view(s) for s in t["sessions"] if s["proto"] == proto and "tunnel" not in s]
        if not mine:
            continue
        sessions += len(mine)
        rel = os.path.relpath(tf, REPO)
        problems = []
        try:
            flows = flows_of(a.mxray, os.path.join(os.path.dirname(tf), t["capture"]))
        except (RuntimeError, ValueError) as e:
            flows, problems = [], ["mxray failed: %s" % e]
        for port in ports:
            ss = [s for s in mine if s["server_port"] == port]
            ff = [f for f in flows if f["port"] == port]
            if len(ss) != len(ff):
                problems.append("%d session(s) on port %d in the truth, %d mxray flow(s)"
                                % (len(ss), port, len(ff)))
            for s, f in zip(ss, ff):
                sp = check_session(s, f)
                problems += sp
                if a.verbose and not sp:
                    print("ok   %s session %d (%s, port %d): mxray flow %d%s" % (
                        rel, s["index"], s.get("note", ""), port, f["flow"], ok_detail(s, port)))
        others = [s for s in mine if s["server_port"] not in ports]
        if others:
            problems.append("session(s) %s on ports this script does not know" % (
                [s["index"] for s in others]))
        if report(rel, problems):
            passed += 1
        else:
            failed += 1
    if not sessions:
        print("SKIP: no %s session in %s" % (proto.upper(), " ".join(a.truth) or
                                             "pcaps/**/*.truth.json"))
        return SKIP
    return summary(passed, failed)
