#!/usr/bin/env python3
"""digest-floor - how long OpenSSL alone takes to compute the digests mxray computed (issue 28).

usage: scripts/digest-floor.py [--runs N] [--json] NDJSON          mxray's records ("-": stdin)
       scripts/digest-floor.py [--runs N] [--json] --mxray EXE CAPTURE [-- MXRAY-ARGS...]

The floor is the time one thread takes to compute, with OpenSSL and nothing
else, the same digests over the same numbers of bytes as mxray did on a
capture. Which digests, and over how many bytes, comes from mxray's own
records (one `mxray --json - CAPTURE` run, with the same options, e.g.
--hashes, as the run being judged): the helper assumes no set of digests,
it counts what the records carry.

Which bytes count, per `message` record:
  - sha256:      the message's `size` bytes (as carried; SMTP dot-unstuffed);
  - body_sha256: the body's bytes, after the header block. No field gives
                 the body's length; it is taken from the first MIME entity
                 (parts[0], path "0"): a container (multipart/*, a parsed
                 message/rfc822: no digests of its own) has `size` = its
                 body as carried, exact but for an epilogue after the
                 closing delimiter; a leaf in 7bit, 8bit, binary or no
                 encoding has `size` decoded = carried; a base64 leaf is
                 counted as its standard encoding (4 characters per 3
                 bytes, CRLF after every 76), exact to a few bytes; a
                 quoted-printable or other leaf as its decoded size (a
                 lower bound). Without parts[0]: size minus nothing
                 (an upper bound; does not happen on whole messages);
  - parts[].md5, .sha1, .sha256: the part's decoded `size`;
  - parts[].uuencoded[].sha256: that file's `size`.
Within one record, the same algorithm with the same result over the same
number of bytes is counted once (the same bytes need hashing once: e.g. a
single-part 8bit message whose body is its only part). Records of different
transfers of one message each count. Not counted: the digests of
certificates and TLS fingerprints (a few hundred bytes a session), and the
message summaries inside transaction records (the same digest, not
recomputed).

Speed does not depend on content, so the floor hashes zeros: per digest a
fresh hashlib object (OpenSSL's EVP underneath: hashlib.sha256 is
openssl_sha256 on Debian 12), one update per 8 KiB as mxray feeds them, one
final. Reported: the median of --runs (default 3) timed passes, and the
digests and bytes per algorithm. The read floor is tcpdump's time
(scripts/bench.py).
"""
import argparse, hashlib, json, statistics, subprocess, sys, time

CHUNK = 8192
ALGOS = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}
IDENTITY = {None, "", "7bit", "8bit", "binary"}


def containers(parts):
    """Paths of the container entities: multipart/*, and a message/* part
    parsed as a message (its inner message is "P.0")."""
    paths = [p.get("path", "") for p in parts]
    return {p.get("path") for p in parts
            if p.get("content_type", "").startswith("multipart/")
            or any(q.startswith(p.get("path", "") + ".") for q in paths)}


def body_len(rec):
    """The bytes body_sha256 covered (see the module's doc)."""
    parts = rec.get("parts") or []
    if not parts or parts[0].get("path") != "0" or "size" not in parts[0]:
        return rec.get("size", 0)
    n = parts[0]["size"]
    enc = parts[0].get("encoding")
    if "0" in containers(parts) or enc in IDENTITY:
        return n
    if enc == "base64":
        chars = 4 * ((n + 2) // 3)
        return chars + 2 * ((chars + 75) // 76)
    return n


def jobs_of(rec):
    """[(algorithm, bytes)] of one message record, each distinct digest once."""
    seen = set()
    out = []

    def add(algo, value, n):
        if value is None or n is None:
            return
        key = (algo, value, n)
        if key not in seen:
            seen.add(key)
            out.append((algo, n))
    add("sha256", rec.get("sha256"), rec.get("size"))
    if "body_sha256" in rec:
        add("sha256", rec["body_sha256"], body_len(rec))
    for p in rec.get("parts") or []:
        for algo in ALGOS:
            if algo in p:
                add(algo, p[algo], p.get("size"))
        for u in p.get("uuencoded") or []:
            if "sha256" in u:
                add("sha256", u["sha256"], u.get("size"))
    return out


class Scan:
    """What a run of mxray's records says: the digest jobs, and the workload's
    figures (messages, decoded bytes, flows, TLS flows, the summary)."""

    def __init__(self):
        self.jobs = []
        self.messages = 0
        self.message_bytes = 0
        self.decoded_bytes = 0
        self.tls_flows = set()
        self.summary = {}

    def feed(self, line):
        # Every record starts with its type (docs/schema.json, fixed key order):
        # only the few kinds used here are parsed.
        if line.startswith('{"type":"message"'):
            rec = json.loads(line)
            self.messages += 1
            self.message_bytes += rec.get("size", 0)
            parts = rec.get("parts") or []
            inner = containers(parts)
            self.decoded_bytes += sum(p.get("size", 0) for p in parts if p.get("path") not in inner)
            self.jobs.extend(jobs_of(rec))
        elif line.startswith('{"type":"tls"'):
            self.tls_flows.add(json.loads(line).get("flow"))
        elif line.startswith(('{"type":"smtp.session"', '{"type":"lmtp.session"',
                              '{"type":"pop3.session"', '{"type":"imap.session"')):
            rec = json.loads(line)
            if rec.get("tls"):
                self.tls_flows.add(rec.get("flow"))
        elif line.startswith('{"type":"summary"'):
            self.summary = json.loads(line)

    def totals(self):
        """{algorithm: {"digests": n, "bytes": n}}."""
        out = {}
        for algo, n in self.jobs:
            t = out.setdefault(algo, {"digests": 0, "bytes": 0})
            t["digests"] += 1
            t["bytes"] += n
        return out

    def figures(self):
        s = self.summary
        flows = s.get("flows") or 0
        return {"messages": self.messages, "message_bytes": self.message_bytes,
                "decoded_bytes": self.decoded_bytes, "flows": s.get("flows"),
                "peak_flows": s.get("peak_flows"), "tls_flows": len(self.tls_flows),
                "tls_flow_share": round(len(self.tls_flows) / flows, 4) if flows else None,
                "frames": s.get("frames"), "exit_status": s.get("exit_status")}


def hash_pass(jobs):
    """One timed pass over every job: a fresh context, 8 KiB updates, a final."""
    zero = memoryview(bytes(CHUNK))
    ctors = ALGOS
    t0 = time.perf_counter()
    for algo, n in jobs:
        h = ctors[algo]()
        full, rest = divmod(n, CHUNK)
        for _ in range(full):
            h.update(zero)
        if rest:
            h.update(zero[:rest])
        h.digest()
    return time.perf_counter() - t0


def floor(jobs, runs=3):
    """{"median_s", "samples_s"} of `runs` passes over jobs (one thread)."""
    samples = [hash_pass(jobs) for _ in range(max(1, runs))]
    return {"median_s": statistics.median(samples), "samples_s": [round(x, 4) for x in samples]}


def scan_stream(stream):
    sc = Scan()
    for line in stream:
        sc.feed(line)
    return sc


def scan_mxray(exe, capture, args=(), timeout=3600):
    """Runs `exe -q --json - ARGS CAPTURE` and scans its records as they come."""
    p = subprocess.Popen([exe, "-q", "--json", "-"] + list(args) + [capture], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace")
    t0 = time.monotonic()
    try:
        sc = scan_stream(p.stdout)
    finally:
        p.stdout.close()
        rc = p.wait(timeout=max(1, timeout - (time.monotonic() - t0)))
    sc.rc = rc
    return sc


def report(sc, fl):
    tot = sc.totals()
    return {"floor_s": round(fl["median_s"], 4), "samples_s": fl["samples_s"], "digests": tot,
           "bytes_hashed": sum(t["bytes"] for t in tot.values()), "figures": sc.figures()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="timed passes (default 3; the median is the floor)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--mxray", help="run this mxray on CAPTURE instead of reading records")
    ap.add_argument("input", help="mxray's NDJSON records ('-': stdin), or with --mxray the capture")
    ap.add_argument("mxray_args", nargs="*", help="with --mxray: its options, after --")
    a = ap.parse_args()
    if a.mxray:
        sc = scan_mxray(a.mxray, a.input, a.mxray_args)
        if sc.rc not in (0, 3) or not sc.summary:
            sys.exit(f"digest-floor: mxray exited {sc.rc} on {a.input} (options {' '.join(a.mxray_args) or 'none'})")
    elif a.input == "-":
        sc = scan_stream(sys.stdin)
    else:
        with open(a.input, encoding="utf-8", errors="replace") as f:
            sc = scan_stream(f)
    r = report(sc, floor(sc.jobs, a.runs))
    if a.json:
        print(json.dumps(r, indent=1))
        return
    f = r["figures"]
    print(f"digest floor: {r['floor_s']:.3f} s (median of {len(r['samples_s'])}: {r['samples_s']}), "
          f"{r['bytes_hashed'] / 1e6:.1f} MB hashed")
    for algo, t in sorted(r["digests"].items()):
        print(f"  {algo:<7} {t['digests']:>8} digests {t['bytes'] / 1e6:>10.1f} MB")
    print(f"  {f['messages']} message records, {f['message_bytes'] / 1e6:.1f} MB of messages, "
          f"{f['decoded_bytes'] / 1e6:.1f} MB decoded in leaf parts; flows {f['flows']}, TLS flows {f['tls_flows']}")


if __name__ == "__main__":
    main()
