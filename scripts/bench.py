#!/usr/bin/env python3
"""bench - times mxray against the read floor, the digest floor, ndpiReader and tshark
on two workloads (issue 28; the session-heavy one is issue 11's).

usage: scripts/bench.py [--quick] [--workload session|content|both] [--runs N] [--work DIR] [options]

One command: installs what is missing (Debian packages), builds mxray with -O2
(RelWithDebInfo) in build-bench/, builds each workload's captures (cached in
the work directory), then times, per workload, after one warm-up each, in
rounds (every tool once per round, so that a noisy machine hurts them all
alike):

  session   the project's captures in pcaps/ (short lab sessions, ~160 bytes
            a packet) multiplied by scripts/pcap-multiply.py to ~1 GiB and
            ~100 MiB;
  content   the lab scenario bench/content (scripts/lab/scenarios/
            scen_bench.py: seeded messages of 10 KB to 5 MB, base64 and
            quoted-printable parts, through the lab's postfix and dovecot,
            ~1 KB a packet) recorded once as root into the work directory
            and kept under a hash of the lab's code and the servers'
            versions, then multiplied to ~1 GiB (smaller sizes: a subset
            of its whole flows).

  mxray --json /dev/null BIG          full default dissection (a worker per CPU)
  mxray -j0 / -j1 / -j2 ... BIG       one thread; one worker; two workers
  mxray --json /dev/null MED          how time and memory grow with the file
  tcpdump -r BIG -w /dev/null         the libpcap read floor
  ndpiReader -i BIG -q                nDPI classification only
  tshark -r MED -T fields -e ...      the mail fields; its time scaled to BIG by size
  digest floor                        OpenSSL alone over the bytes mxray hashed
                                      (scripts/digest-floor.py, from mxray's own
                                      records on BIG; median of 3)

Each run goes through /usr/bin/time -v (peak RSS, CPU); the wall time is taken
around it. It prints, per workload, the capture's figures, a table and the
ratios of issue 28's targets (PASS/MISS, by how much), and writes the same to
WORK/bench.json and WORK/bench.md. See docs/bench.md.
"""
import argparse, hashlib, importlib.util, inspect, json, os, platform, re, shutil, statistics, struct, subprocess, sys, time

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MIB = 1 << 20
RUN_TIMEOUT = 3600          # seconds for any one timed command
RECORD_TIMEOUT = 1800       # seconds for recording the content workload
PACKAGES = [
    "build-essential", "cmake", "pkg-config",
    "libpcap-dev", "libndpi-dev", "libjson-c-dev", "libssl-dev", "zlib1g-dev",
    "python3", "time", "tcpdump", "tshark",
    "libndpi-bin",          # /usr/bin/ndpiReader for libndpi 4.2
]
TSHARK_FIELDS = ["smtp.req.command", "smtp.response.code", "pop.request.command",
                 "imap.request.command", "imf.subject"]
LAB = os.path.join(REPO, "scripts", "lab")
CONTENT_SCENARIO = "bench/content"
CONTENT_PCAP = os.path.join("bench", "content.pcap")        # under the scenario's LAB_PCAPS
# What the recording depends on: the lab's code and the scenario (its seed and
# sizes are constants there), and the servers' and tools' versions.
CONTENT_CODE = ["lab.py", "run-all.sh", "lib/*.py", "scenarios/scen_bench.py"]
CONTENT_PACKAGES = ["postfix", "dovecot-core", "dovecot-lmtpd", "openssl", "libssl3", "tcpdump",
                    "tcpreplay", "python3"]
WORKLOAD_NAMES = {"session": "session-heavy", "content": "content-heavy"}

# Issue 28's targets: (ratio, op, target); the ratio's value comes from ratio_value().
TARGETS = {
    "content": [("t(mxray -j0) / t(read floor + digest floor)", "<=", 1.5),
                ("t(mxray, default) / t(ndpiReader)", "<=", 1.5),
                ("t(mxray, default) / t(tcpdump)", "<=", 4),
                ("t(mxray, 2 workers) / t(mxray -j0)", "<=", 0.59),
                ("peak RSS of mxray on BIG, MiB", "<=", 64)],
    "session": [("t(mxray, default) / t(ndpiReader)", "<=", 1.0),
                ("t(mxray, default) / t(tcpdump)", "<=", 8),
                ("t(mxray, 2 workers) / t(mxray -j0)", "<=", 0.59),
                ("peak RSS of mxray on BIG, MiB", "<=", 64)],
}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def load_digest_floor():
    """scripts/digest-floor.py as a module (its name has a hyphen)."""
    spec = importlib.util.spec_from_file_location("digest_floor", os.path.join(REPO, "scripts", "digest-floor.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- install, build

def installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def install():
    missing = [p for p in PACKAGES if not installed(p)]
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # tshark asks whether non-root users may capture; the answer does not matter here.
    subprocess.run(sudo + ["debconf-set-selections"], input="wireshark-common wireshark-common/install-setuid boolean false\n",
                   text=True, check=True, env=env)
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env, timeout=1800)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                   check=True, env=env, stdout=subprocess.DEVNULL, timeout=1800)


def build():
    bdir = os.path.join(REPO, "build-bench")
    log("building mxray (RelWithDebInfo: -O2 -g) in build-bench/")
    for cmd in (["cmake", "-S", REPO, "-B", bdir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                ["cmake", "--build", bdir, "--target", "mxray", "-j", str(os.cpu_count() or 2)]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
            die(f"'{' '.join(cmd)}' failed")
    exe = os.path.join(bdir, "mxray")
    if not os.access(exe, os.X_OK):
        die(f"{exe} was not built")
    return exe


# ---------------------------------------------------------------- captures

def inputs():
    """The project's own clean captures: SMTP, POP3, IMAP (pcap and pcapng) and the demo."""
    out = []
    for sub in ("smtp", "pop3", "imap"):
        d = os.path.join(REPO, "pcaps", sub)
        out += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith((".pcap", ".pcapng")))
    demo = os.path.join(REPO, "pcaps", "demo.pcapng")
    if os.path.exists(demo):
        out.append(demo)
    if not out:
        die("no captures under pcaps/")
    return out


def cached_meta(path, meta_path, key):
    """The metadata of a capture built earlier under key, if it is still there whole; else None."""
    if not (os.path.exists(path) and os.path.exists(meta_path)):
        return None
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get("key") != key or os.path.getsize(path) != meta.get("bytes"):
        return None
    log(f"using cached {path}")
    return meta


def cached(work, prefix, label, key, build_fn):
    """WORK/PREFIX-LABEL-KEY.pcap with its .json metadata: found in the cache,
    or built by build_fn(tmp path) -> metadata (an older key's file of the
    same prefix and label is removed first)."""
    path = os.path.join(work, f"{prefix}-{label}-{key}.pcap")
    meta_path = path + ".json"
    meta = cached_meta(path, meta_path, key)
    if meta:
        return meta
    for old in os.listdir(work):            # an older build of the same size
        if old.startswith(f"{prefix}-{label}-") and not old.startswith(f"{prefix}-{label}-{key}"):
            os.unlink(os.path.join(work, old))
    log(f"building {path}")
    tmp = path + ".part"
    t0 = time.monotonic()
    meta = build_fn(tmp)
    os.replace(tmp, path)
    meta.update({"key": key, "path": path, "build_s": round(time.monotonic() - t0, 1)})
    if os.path.getsize(path) != meta["bytes"]:
        die(f"{path}: size differs from what its builder reported")
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def multiply(files, size, spacing):
    """A builder: pcap-multiply --clients --size SIZE of files."""
    def build_fn(tmp):
        r = subprocess.run([os.path.join(REPO, "scripts", "pcap-multiply.py"), "-v", "--clients", "--size", str(size),
                            "--spacing", str(spacing), "-o", tmp] + files, capture_output=True, text=True, timeout=7200)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            die("pcap-multiply failed")
        m = re.search(r"(\d+) copies, (\d+) packets, (\d+) bytes", r.stderr)
        if not m:
            die(f"pcap-multiply said: {r.stderr.strip()}")
        return {"how": "multiplied", "copies": int(m.group(1)), "packets": int(m.group(2)),
                "bytes": int(m.group(3)), "spacing_s": spacing, "inputs": len(files)}
    return build_fn


def make_capture(work, files, size, spacing):
    """The session-heavy workload: (a cached) capture of about SIZE bytes; returns its metadata."""
    h = hashlib.sha256()
    with open(os.path.join(REPO, "scripts", "pcap-multiply.py"), "rb") as f:
        h.update(f.read())
    h.update(f"size={size} spacing={spacing} clients=1\n".encode())
    for p in files:
        h.update(os.path.relpath(p, REPO).encode() + b"\0")
        with open(p, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return cached(work, "mail", f"{size // MIB}MiB", h.hexdigest()[:16], multiply(files, size, spacing))


def pcap_records(path):
    """(global header, [(record header, frame)]) of a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        die(f"{path}: not a little-endian classic pcap")
    recs, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        recs.append((data[off:off + 16], data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return data[:24], recs


def flow_of(frame):
    """A TCP/IPv4 frame's connection, the same both ways; None for others."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    l4 = 14 + (frame[14] & 15) * 4
    if len(frame) < l4 + 4:
        return None
    a, b = frame[26:30] + frame[l4:l4 + 2], frame[30:34] + frame[l4 + 2:l4 + 4]
    return (a, b) if a < b else (b, a)


def flow_subset(seed, size):
    """A builder: whole flows of seed, picked in order of their first packet
    so that the bytes kept follow size/seed evenly through the capture (each
    flow is kept when that brings the kept bytes nearer the running target),
    written in their original order."""
    def build_fn(tmp):
        head, recs = pcap_records(seed)
        total = sum(16 + len(fr) for _, fr in recs)
        flows = {}
        for i, (_, fr) in enumerate(recs):
            f = flows.setdefault(flow_of(fr), [i, 0])
            f[1] += 16 + len(fr)
        share = max(0.0, min(1.0, (size - 24) / total))
        keep, want, got = set(), 0.0, 0
        for k, (_, n) in sorted(flows.items(), key=lambda kv: kv[1][0]):
            want += share * n
            if got + n / 2 <= want:
                keep.add(k)
                got += n
        packets, nbytes = 0, 24
        with open(tmp, "wb") as out:
            out.write(head)
            for rh, fr in recs:
                if flow_of(fr) in keep:
                    out.write(rh)
                    out.write(fr)
                    packets += 1
                    nbytes += 16 + len(fr)
        return {"how": "flow subset", "flows_kept": len(keep), "flows": len(flows), "packets": packets,
                "bytes": nbytes, "copies": 1, "inputs": 1, "spacing_s": None}
    return build_fn


def count_packets(path):
    n = 0
    with open(path, "rb") as f:
        f.seek(24)
        while True:
            h = f.read(16)
            if len(h) < 16:
                return n
            f.seek(struct.unpack("<I", h[8:12])[0], 1)
            n += 1


def content_key():
    """The hash the recorded seed is kept under: the lab's code, the
    scenario, and the versions of the servers and tools that made it."""
    import glob
    h = hashlib.sha256(CONTENT_SCENARIO.encode() + b"\n")
    for pat in CONTENT_CODE:
        for p in sorted(glob.glob(os.path.join(LAB, pat))):
            h.update(os.path.relpath(p, REPO).encode() + b"\0")
            with open(p, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    r = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\n"] + CONTENT_PACKAGES,
                       capture_output=True, text=True)
    h.update(r.stdout.encode())
    return h.hexdigest()[:16], r.stdout.split("\n")


def content_seed(work, given=None):
    """The content workload's seed capture: --content-seed's file, or the
    lab scenario bench/content recorded (as root) into WORK/content-seed-KEY/
    once for each key; its metadata."""
    if given:
        path = os.path.realpath(given)
        with open(path, "rb") as f:
            key = hashlib.sha256(f.read()).hexdigest()[:16]
        return {"key": key, "path": path, "bytes": os.path.getsize(path), "packets": count_packets(path),
                "recorded": "given (--content-seed)"}
    key, versions = content_key()
    d = os.path.join(work, f"content-seed-{key}")
    path = os.path.join(d, CONTENT_PCAP)
    meta_path = os.path.join(d, "seed.json")
    meta = cached_meta(path, meta_path, key)
    if meta:
        return meta
    for old in os.listdir(work):
        if old.startswith("content-seed-") and old != f"content-seed-{key}":
            shutil.rmtree(os.path.join(work, old), ignore_errors=True)
    if os.geteuid() != 0 and not shutil.which("sudo"):
        die("recording the content workload needs root (network namespaces, postfix, dovecot): "
            "run as root, or give a recorded capture with --content-seed")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cmd = ([] if os.geteuid() == 0 else ["sudo"]) + ["env", f"LAB_PCAPS={d}", os.path.join(LAB, "run-all.sh"), CONTENT_SCENARIO]
    log(f"recording {CONTENT_SCENARIO} with the lab into {d} (a minute or so)")
    t0 = time.monotonic()
    with open(os.path.join(d, "record.log"), "w") as lf:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT, timeout=RECORD_TIMEOUT)
    if r.returncode != 0 or not os.path.exists(path):
        with open(os.path.join(d, "record.log"), errors="replace") as lf:
            sys.stderr.write(lf.read()[-4000:])
        die(f"recording {CONTENT_SCENARIO} failed (log: {d}/record.log)")
    # the messages as sent and delivered (NAME.d/) are not needed here: 2/3 of the capture's size
    shutil.rmtree(os.path.join(d, "bench", "content.d"), ignore_errors=True)
    with open(os.path.join(d, "bench", "content.truth.json")) as f:
        truth = json.load(f)
    sessions = {}
    for s in truth["sessions"]:
        k = f"{s['proto']}/{s['server_port']}/{s['tls']}"
        sessions[k] = sessions.get(k, 0) + 1
    meta = {"key": key, "path": path, "bytes": os.path.getsize(path), "packets": count_packets(path),
            "record_s": round(time.monotonic() - t0, 1), "recorded": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "notes": truth.get("notes"), "client_sessions": sessions,
            "versions": [v for v in versions if v]}
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def content_capture(work, seed, size, spacing):
    """The content workload at about SIZE bytes: the seed multiplied, or a subset of its flows."""
    # the seed's key names the code that recorded it; its size and time tell one recording from another
    h = hashlib.sha256(f"seed={seed['key']} {seed['bytes']} {seed.get('recorded')} size={size} spacing={spacing}\n".encode())
    with open(os.path.join(REPO, "scripts", "pcap-multiply.py"), "rb") as f:
        h.update(hashlib.sha256(f.read()).digest())
    for fn in (pcap_records, flow_of, flow_subset):
        h.update(inspect.getsource(fn).encode())
    build_fn = multiply([seed["path"]], size, spacing) if size >= seed["bytes"] * 0.75 else flow_subset(seed["path"], size)
    return cached(work, "content", f"{size // MIB}MiB", h.hexdigest()[:16], build_fn)


# ---------------------------------------------------------------- timing

def parse_time_v(path):
    d = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().rpartition(": ")
            d[k] = v
    return {"rss_kib": int(d.get("Maximum resident set size (kbytes)", 0)),
            "user_s": float(d.get("User time (seconds)", 0)),
            "sys_s": float(d.get("System time (seconds)", 0)),
            "exit": int(d.get("Exit status", -1))}


def run_once(work, bench):
    tv = os.path.join(work, ".time-v")
    err = os.path.join(work, ".stderr")
    with open(err, "wb") as ef:
        t0 = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-v", "-o", tv] + bench["cmd"], start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=ef)
        try:
            p.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)         # the group we started: time and the tool under it
            p.wait()
            die(f"'{' '.join(bench['cmd'])}' took over {RUN_TIMEOUT} s")
        wall = time.perf_counter() - t0
    if p.returncode not in bench["ok_exit"]:
        with open(err, errors="replace") as f:
            sys.stderr.write(f.read()[-3000:])
        die(f"'{' '.join(bench['cmd'])}' exited {p.returncode}")
    r = parse_time_v(tv)
    r["wall_s"] = wall
    return r


SUMMARY_KEYS = ("frame_count", "flows", "peak_flows", "flows_evicted", "peak_reassembly_bytes", "late_packets", "exit_status")


def summary_of(s, rc):
    out = {k: s.get(k) for k in SUMMARY_KEYS}
    out["rc"] = rc
    return out


def mxray_summary(exe, path, mxargs):
    """The warm-up of mxray on MED: the NDJSON goes through a pipe; its last line is the summary."""
    p1 = subprocess.Popen([exe, "-q", "--json", "-"] + mxargs + [path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        tail = subprocess.run(["tail", "-n", "1"], stdin=p1.stdout, capture_output=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        p1.kill()
        p1.wait()
        raise
    p1.stdout.close()
    rc = p1.wait(timeout=60)
    try:
        s = json.loads(tail.stdout)
    except ValueError:
        s = {}
    return summary_of(s, rc)


# ---------------------------------------------------------------- report

def fmt_s(x):
    return f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 100 else f"{x:.1f}"


def rows_of(results):
    rows = []
    for b in results:
        t = b["median_s"]
        rows.append([b["tool"], b["file"], f"{b['bytes'] / MIB:.1f}", str(b["packets"]),
                     fmt_s(t), f"{fmt_s(b['min_s'])}-{fmt_s(b['max_s'])}" if b["runs"] else "scaled",
                     f"{b['bytes'] / 1e6 / t:.1f}", f"{b['packets'] / t / 1e3:.0f}k",
                     f"{b['rss_mib']:.1f}" if b.get("rss_mib") is not None else "-", str(b["runs"] or "-")])
    return rows


HEAD = ["tool", "file", "size MiB", "packets", "median s", "min-max s", "MB/s", "packets/s", "peak RSS MiB", "runs"]


def text_table(rows):
    w = [max(len(HEAD[i]), *(len(r[i]) for r in rows)) for i in range(len(HEAD))]
    line = lambda r: "  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(r))
    return "\n".join([line(HEAD), line(["-" * x for x in w])] + [line(r) for r in rows])


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def verdict(name, value, op, target, fmt="{:.2f}"):
    ok = value <= target if op == "<=" else value >= target
    miss = "" if ok else (f" (x{value / target:.2f} over)" if op == "<=" else f" (x{target / value:.2f} short)")
    return {"ratio": name, "value": round(value, 3), "op": op, "target": target,
            "pass": ok, "text": f"{fmt.format(value)} {op} {target}: {'PASS' if ok else 'MISS'}{miss}"}


def ratio_values(by, big, floor_s):
    """Every ratio of TARGETS that this run can give, by name."""
    mx, j0 = by[("mxray", big)]["median_s"], by[("mxray -j0", big)]["median_s"]
    read = by[("tcpdump", big)]["median_s"]
    return {"t(mxray -j0) / t(read floor + digest floor)": j0 / (read + floor_s),
            "t(mxray, default) / t(ndpiReader)": mx / by[("ndpiReader", big)]["median_s"],
            "t(mxray, default) / t(tcpdump)": mx / read,
            "t(mxray, 2 workers) / t(mxray -j0)": by[("mxray -j2", big)]["median_s"] / j0,
            "peak RSS of mxray on BIG, MiB": max(by[(t, big)]["rss_mib"] for t in ("mxray", "mxray -j0", "mxray -j1", "mxray -j2"))}


def version(cmd, pattern=None):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (r.stdout + r.stderr).strip()
    if pattern:
        m = re.search(pattern, text)
        return m.group(0) if m else "?"
    return text.splitlines()[0].rstrip(".") if text else "?"


# ---------------------------------------------------------------- one workload

def measure(work, exe, wl, big, med, bname, mname, runs, truns, mxargs, floor_mod):
    """Times every tool on one workload's captures; returns its part of bench.json."""
    mx = [exe] + mxargs
    benches = [
        {"tool": "mxray", "file": bname, "cap": big, "cmd": mx + ["--json", "/dev/null", big["path"]], "ok_exit": (0, 3), "runs": runs},
        {"tool": "mxray", "file": mname, "cap": med, "cmd": mx + ["--json", "/dev/null", med["path"]], "ok_exit": (0, 3), "runs": runs},
        # Scaling: one thread; one worker beside the reader and the merge; two
        # workers (the default has one worker per CPU).
        {"tool": "mxray -j0", "file": bname, "cap": big, "cmd": mx + ["-j0", "--json", "/dev/null", big["path"]], "ok_exit": (0, 3), "runs": runs},
        {"tool": "mxray -j1", "file": bname, "cap": big, "cmd": mx + ["-j1", "--json", "/dev/null", big["path"]], "ok_exit": (0, 3), "runs": runs},
        {"tool": "mxray -j2", "file": bname, "cap": big, "cmd": mx + ["-j2", "--json", "/dev/null", big["path"]], "ok_exit": (0, 3), "runs": runs},
        {"tool": "tcpdump", "file": bname, "cap": big, "cmd": ["tcpdump", "-r", big["path"], "-w", "/dev/null"], "ok_exit": (0,), "runs": runs},
        {"tool": "ndpiReader", "file": bname, "cap": big, "cmd": ["ndpiReader", "-i", big["path"], "-q"], "ok_exit": (0,), "runs": runs},
        {"tool": "tshark", "file": mname, "cap": med,
         "cmd": ["tshark", "-r", med["path"], "-T", "fields"] + [x for f in TSHARK_FIELDS for x in ("-e", f)],
         "ok_exit": (0,), "runs": truns},
    ]
    load0 = os.getloadavg()
    log(f"{wl}: warm-up, one run of each (mxray's reads its records: the digest floor's input); "
        f"load average {load0[0]:.2f}")
    summaries, scan = {}, None
    for b in benches:
        if b["tool"] == "mxray" and b["file"] == bname:
            scan = floor_mod.scan_mxray(exe, big["path"], mxargs, RUN_TIMEOUT)
            if scan.rc not in b["ok_exit"] or not scan.summary:
                die(f"'{exe} -q --json - {' '.join(mxargs)} {big['path']}' exited {scan.rc} (summary: {bool(scan.summary)})")
            summaries[bname] = summary_of(scan.summary, scan.rc)
        elif b["tool"] == "mxray":
            summaries[mname] = mxray_summary(exe, med["path"], mxargs)
        elif b["tool"].startswith("mxray"):
            pass  # the same capture was just read: warm
        else:
            run_once(work, b)
        b["samples"] = []
    rounds = max(b["runs"] for b in benches)
    for i in range(rounds):
        for b in benches:
            if len(b["samples"]) < b["runs"]:
                r = run_once(work, b)
                b["samples"].append(r)
                log(f"{wl} round {i + 1}/{rounds}: {b['tool']:<10} {b['file']:>8} {r['wall_s']:8.3f} s {r['rss_kib'] / 1024:8.1f} MiB")
    fl = floor_mod.floor(scan.jobs, 3)
    log(f"{wl}: digest floor {fl['median_s']:.3f} s (median of 3: {fl['samples_s']})")
    load1 = os.getloadavg()

    results = []
    for b in benches:
        ts = [s["wall_s"] for s in b["samples"]]
        results.append({"tool": b["tool"], "file": b["file"], "bytes": b["cap"]["bytes"], "packets": b["cap"]["packets"],
                        "runs": len(ts), "median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts),
                        "rss_mib": max(s["rss_kib"] for s in b["samples"]) / 1024,
                        "cpu_median_s": statistics.median(s["user_s"] + s["sys_s"] for s in b["samples"]),
                        "exit": sorted({s["exit"] for s in b["samples"]}),
                        "command": " ".join(b["cmd"]), "samples_s": [round(x, 4) for x in ts]})
    tsh = next(r for r in results if r["tool"] == "tshark")
    scale = big["bytes"] / med["bytes"]
    results.append({"tool": "tshark (scaled)", "file": bname, "bytes": big["bytes"], "packets": big["packets"], "runs": 0,
                    "median_s": tsh["median_s"] * scale, "min_s": tsh["min_s"] * scale, "max_s": tsh["max_s"] * scale,
                    "rss_mib": None, "scale": round(scale, 4),
                    "command": f"tshark on {mname}, times x{scale:.3f} (size ratio)"})
    results.append({"tool": "digest floor", "file": bname, "bytes": big["bytes"], "packets": big["packets"], "runs": 3,
                    "median_s": fl["median_s"], "min_s": min(fl["samples_s"]), "max_s": max(fl["samples_s"]),
                    "rss_mib": None, "samples_s": fl["samples_s"],
                    "command": "scripts/digest-floor.py: hashlib (OpenSSL) over the bytes mxray hashed, one thread"})
    order = [("mxray", bname), ("mxray", mname), ("mxray -j0", bname), ("mxray -j1", bname), ("mxray -j2", bname),
             ("tcpdump", bname), ("digest floor", bname), ("ndpiReader", bname), ("tshark", mname), ("tshark (scaled)", bname)]
    results.sort(key=lambda r: order.index((r["tool"], r["file"])))
    by = {(r["tool"], r["file"]): r for r in results}
    values = ratio_values(by, bname, fl["median_s"])
    ratios = [verdict(n, values[n], op, t, "{:.1f}" if "RSS" in n else "{:.2f}") for n, op, t in TARGETS[wl]]
    mxb, mxm = by[("mxray", bname)], by[("mxray", mname)]
    growth = {"size_x": mxb["bytes"] / mxm["bytes"], "time_x": mxb["median_s"] / mxm["median_s"],
              "rss_x": mxb["rss_mib"] / mxm["rss_mib"]}
    growth["time_per_byte_x"] = growth["time_x"] / growth["size_x"]
    one = by[("mxray -j0", bname)]["median_s"]
    workers = min(os.cpu_count() or 1, 16) if (os.cpu_count() or 1) > 1 else 0
    scaling = [{"workers": w, "label": lab, "median_s": by[(t, bname)]["median_s"], "speedup": round(one / by[(t, bname)]["median_s"], 3)}
               for w, t, lab in ((0, "mxray -j0", "one thread (-j0)"), (1, "mxray -j1", "1 worker (-j1)"),
                                 (2, "mxray -j2", "2 workers (-j2)"), (workers, "mxray", f"the default ({workers} workers)"))]
    fig = scan.figures()
    tot = scan.totals()
    capture = {"bytes": big["bytes"], "packets": big["packets"], "bytes_per_packet": round(big["bytes"] / big["packets"], 1),
               "flows": fig["flows"], "peak_flows": fig["peak_flows"], "tls_flows": fig["tls_flows"],
               "tls_flow_share": fig["tls_flow_share"], "messages": fig["messages"], "message_bytes": fig["message_bytes"],
               "decoded_bytes": fig["decoded_bytes"], "digests": tot, "bytes_hashed": sum(t["bytes"] for t in tot.values())}
    return {"workload": wl, "captures": {bname: big, mname: med}, "capture": capture, "results": results,
            "ratios": ratios, "other_ratios": values, "growth": growth, "scaling": scaling, "mxray_summary": summaries,
            "loadavg_start": round(load0[0], 2), "loadavg_end": round(load1[0], 2), "digest_floor": fl}


def capture_lines(w, bname, mname):
    c, big, med = w["capture"], w["captures"][bname], w["captures"][mname]
    how = (f"{big['copies']} copies of {big['inputs']} capture(s), spacing {big['spacing_s']} s" if big.get("how", "multiplied") == "multiplied"
           else f"{big['flows_kept']} of the seed's {big['flows']} flows")
    med_how = (f"{med['copies']} copies" if med.get("how", "multiplied") == "multiplied" else f"{med['flows_kept']} of the seed's {med['flows']} flows")
    out = [f"BIG {bname}: {c['bytes']} bytes, {c['packets']} packets, {c['bytes_per_packet']} bytes a packet; {how}; "
           f"MED {mname}: {med['bytes']} bytes, {med['packets']} packets, {med_how}",
           f"BIG as mxray saw it: {c['flows']} flows (peak {c['peak_flows']}), {c['tls_flows']} in TLS "
           f"({100 * (c['tls_flow_share'] or 0):.1f}%); {c['messages']} messages in clear, {c['message_bytes'] / 1e6:.1f} MB, "
           f"{c['decoded_bytes'] / 1e6:.1f} MB decoded in their leaf parts; hashed: "
           + ", ".join(f"{a} {t['digests']} x, {t['bytes'] / 1e6:.1f} MB" for a, t in sorted(c["digests"].items()))]
    return out


def notes_of(w, env, runs, truns, bname, mname):
    by = {(r["tool"], r["file"]): r for r in w["results"]}
    tsh, g = by[("tshark", mname)], w["growth"]
    notes = [f"median of {runs} runs after 1 warm-up (tshark: {truns}; digest floor: 3); wall time; MB/s = 10^6 bytes/s; "
             f"peak RSS = largest maximum RSS of the timed runs (/usr/bin/time -v); the RSS target takes the largest of the four mxray runs on BIG",
             f"read floor = tcpdump; digest floor = scripts/digest-floor.py: OpenSSL (hashlib) in one thread over the bytes "
             f"mxray's records say it hashed ({w['capture']['bytes_hashed'] / 1e6:.1f} MB); "
             f"t(mxray -j0) / t(read floor + digest floor) = {w['other_ratios']['t(mxray -j0) / t(read floor + digest floor)']:.2f}",
             f"tshark (scaled) = tshark on {mname} x {by[('tshark (scaled)', bname)]['scale']:.3f} (size ratio); "
             f"tshark's RSS on {mname}: {tsh['rss_mib']:.0f} MiB"]
    notes += capture_lines(w, bname, mname)
    notes.append(f"mxray growth {mname} -> {bname}: size x{g['size_x']:.2f}, time x{g['time_x']:.2f} "
                 f"(per byte x{g['time_per_byte_x']:.2f}), RSS x{g['rss_x']:.2f}")
    for f, s in w["mxray_summary"].items():
        r = by[("mxray", f)]
        per_flow = f"; peak RSS / peak_flows = {r['rss_mib'] * 1024 / s['peak_flows']:.1f} KiB" if s.get("peak_flows") else ""
        notes.append(f"mxray summary {f}: " + ", ".join(f"{k} {v}" for k, v in s.items()) + per_flow)
    notes.append(f"scaling on {bname}: " + "; ".join(f"{x['label']} {fmt_s(x['median_s'])} s, x{x['speedup']:.2f}" for x in w["scaling"])
                 + " (workers are threads beside the reader and the merge threads)")
    old = [f"t(mxray)/t(tcpdump) {w['other_ratios']['t(mxray, default) / t(tcpdump)']:.2f} (asked <= 2.5)",
           f"t(tshark, scaled)/t(mxray) {by[('tshark (scaled)', bname)]['median_s'] / by[('mxray', bname)]['median_s']:.2f} (asked >= 40)",
           f"RSS(BIG)/RSS(MED) {g['rss_x']:.2f} (asked <= 1.2)"]
    notes.append("older targets (issue 11, not this issue's), for comparison: " + "; ".join(old))
    notes.append(f"load average {w['loadavg_start']} at start, {w['loadavg_end']} at end of this workload")
    if w.get("seed"):
        s = w["seed"]
        notes.append(f"seed: {s['path']} ({s['bytes']} bytes, {s['packets']} packets, key {s['key']}, recorded {s.get('recorded')}"
                     + (f" in {s['record_s']} s" if s.get("record_s") else "") + ")"
                     + (f"; {'; '.join(s['notes'])}" if s.get("notes") else ""))
    return notes


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 MiB and 10 MiB captures, 3 runs: for trying it out")
    ap.add_argument("--workload", choices=("session", "content", "both"), default="both",
                    help="session-heavy (pcaps/ multiplied), content-heavy (the lab's bench/content), or both (default)")
    ap.add_argument("--runs", type=int, help="timed runs per measurement after the warm-up (default 5; 3 with --quick)")
    ap.add_argument("--tshark-runs", type=int, help="timed runs of tshark (default 3: it is slow)")
    ap.add_argument("--work", default="/tmp/mxbench", help="work directory for captures and results (default /tmp/mxbench)")
    ap.add_argument("--big-mib", type=int, help="size of the big capture (default 1024; 100 with --quick)")
    ap.add_argument("--med-mib", type=int, help="size of the smaller capture (default 100; 10 with --quick)")
    ap.add_argument("--spacing", type=float, default=0.25, help="seconds between copies of the inputs (default 0.25)")
    ap.add_argument("--hashes", help="pass --hashes LIST to every mxray run (the timed ones and the digest floor's)")
    ap.add_argument("--content-seed", help="use this capture as the content workload's seed instead of recording it")
    ap.add_argument("--no-install", action="store_true", help="do not install missing packages")
    a = ap.parse_args()
    big_mib = a.big_mib or (100 if a.quick else 1024)
    med_mib = a.med_mib or (10 if a.quick else 100)
    runs = a.runs or (3 if a.quick else 5)
    truns = a.tshark_runs or min(runs, 3)
    if runs < 1 or truns < 1 or not 0 < med_mib < big_mib:
        die("need runs >= 1 and 0 < --med-mib < --big-mib")
    work = os.path.realpath(a.work)
    if work == REPO or work.startswith(REPO + os.sep):
        die(f"the work directory must be outside the repository ({REPO})")
    os.makedirs(work, exist_ok=True)
    mxargs = ["--hashes", a.hashes] if a.hashes else []
    wls = ["session", "content"] if a.workload == "both" else [a.workload]
    t_start = time.monotonic()

    if not a.no_install:
        install()
    for tool in ("tcpdump", "tshark", "ndpiReader", "cmake"):
        if not shutil.which(tool):
            die(f"{tool} is missing")
    if not os.access("/usr/bin/time", os.X_OK):
        die("/usr/bin/time is missing (Debian package 'time')")
    exe = build()
    floor_mod = load_digest_floor()
    bname, mname = f"{big_mib}MiB", f"{med_mib}MiB"

    caps = {}
    if "session" in wls:
        files = inputs()
        caps["session"] = (make_capture(work, files, big_mib * MIB, a.spacing),
                           make_capture(work, files, med_mib * MIB, a.spacing), None)
    if "content" in wls:
        seed = content_seed(work, a.content_seed)
        caps["content"] = (content_capture(work, seed, big_mib * MIB, a.spacing),
                           content_capture(work, seed, med_mib * MIB, a.spacing), seed)

    env = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host_cpus": os.cpu_count(),
           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor()),
           "mxray": version([exe, "--version"]),
           "mxray_commit": version(["git", "-C", REPO, "describe", "--always", "--dirty"]),
           "mxray_args": " ".join(mxargs), "build": "RelWithDebInfo (-O2 -g), build-bench/",
           "tcpdump": version(["tcpdump", "--version"]), "tshark": version(["tshark", "-v"]),
           "ndpiReader": version(["ndpiReader", "-h"], r"nDPI [0-9.]+"),
           "openssl": version([sys.executable, "-c", "import ssl; print(ssl.OPENSSL_VERSION)"])}
    doc = {"environment": env, "runs": runs, "tshark_runs": truns, "workloads": {}}
    text, md = [], [f"### mxray benchmark, {env['date']}", ""]
    for wl in wls:
        big, med, seed = caps[wl]
        w = measure(work, exe, wl, big, med, bname, mname, runs, truns, mxargs, floor_mod)
        if seed:
            w["seed"] = seed
        doc["workloads"][wl] = w
        notes = notes_of(w, env, runs, truns, bname, mname)
        title = f"{WORKLOAD_NAMES[wl]} workload"
        rows = rows_of(w["results"])
        text += [f"== {title} ==", text_table(rows), "", f"ratios (issue 28 targets, {WORKLOAD_NAMES[wl]}):"]
        text += [f"  {r['ratio']:<46} {r['text']}" for r in w["ratios"]]
        text += [""] + [f"  {n}" for n in notes] + [""]
        md += [f"#### {title}", "", md_table(HEAD, rows), "",
               md_table(["ratio (issue 28)", "value", "target", "result"],
                        [[r["ratio"], f"{r['value']:.2f}", f"{r['op']} {r['target']}", r["text"].split(": ", 1)[1]] for r in w["ratios"]]),
               ""] + [f"- {n}" for n in notes] + [""]
    common = (f"{env['cpu']}, {env['host_cpus']} CPUs; mxray {env['mxray_commit']} ({env['build']})"
              f"{'; mxray options ' + env['mxray_args'] if env['mxray_args'] else ''}; {env['tcpdump']}; {env['tshark']}; "
              f"{env['ndpiReader']}; {env['openssl']}")
    text.append(common)
    md.append(f"- {common}")
    doc["total_s"] = round(time.monotonic() - t_start, 1)
    print("\n".join(text))
    with open(os.path.join(work, "bench.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(work, "bench.json"), "w") as f:
        json.dump(doc, f, indent=1)
    log(f"wrote {work}/bench.json and {work}/bench.md; {doc['total_s']} s in all")


if __name__ == "__main__":
    try:
        main()
    except subprocess.TimeoutExpired as e:
        die(f"timed out: {e}")
    except KeyboardInterrupt:
        die("interrupted")
