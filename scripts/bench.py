#!/usr/bin/env python3
"""bench - times mxray against the libpcap read floor, ndpiReader and tshark (issue 11).

usage: scripts/bench.py [--quick] [--runs N] [--work DIR] [options]

One command: installs what is missing (Debian packages), builds mxray with -O2
(RelWithDebInfo) in build-bench/, builds a ~1 GiB and a ~100 MiB capture from
the project's own captures with scripts/pcap-multiply.py (cached in the work
directory), then times, after one warm-up each, in rounds (every tool once per
round, so that a noisy machine hurts them all alike):

  mxray --json /dev/null BIG          full default dissection
  mxray --json /dev/null MED          how time and memory grow with the file
  tcpdump -r BIG -w /dev/null         the libpcap read floor
  ndpiReader -i BIG -q                nDPI classification only
  tshark -r MED -T fields -e ...      the mail fields; its time scaled to BIG by size

Each run goes through /usr/bin/time -v (peak RSS, CPU); the wall time is taken
around it. It prints a table and the ratios of issue 11 with their targets, and
writes the same to WORK/bench.json and WORK/bench.md. See docs/bench.md.
"""
import argparse, hashlib, json, os, platform, re, shutil, statistics, subprocess, sys, time

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MIB = 1 << 20
RUN_TIMEOUT = 3600          # seconds for any one timed command
PACKAGES = [
    "build-essential", "cmake", "pkg-config",
    "libpcap-dev", "libndpi-dev", "libjson-c-dev", "libssl-dev", "zlib1g-dev",
    "python3", "time", "tcpdump", "tshark",
    "libndpi-bin",          # /usr/bin/ndpiReader for libndpi 4.2
]
TSHARK_FIELDS = ["smtp.req.command", "smtp.response.code", "pop.request.command",
                 "imap.request.command", "imf.subject"]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


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


def make_capture(work, files, size, spacing):
    """Builds (or finds in the cache) a capture of about SIZE bytes; returns its metadata."""
    multiply = os.path.join(REPO, "scripts", "pcap-multiply.py")
    h = hashlib.sha256()
    with open(multiply, "rb") as f:
        h.update(f.read())
    h.update(f"size={size} spacing={spacing} clients=1\n".encode())
    for p in files:
        h.update(os.path.relpath(p, REPO).encode() + b"\0")
        with open(p, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    key = h.hexdigest()[:16]
    label = f"{size // MIB}MiB"
    path = os.path.join(work, f"mail-{label}-{key}.pcap")
    meta_path = path + ".json"
    if os.path.exists(path) and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("key") == key and os.path.getsize(path) == meta.get("bytes"):
            log(f"using cached {path}")
            return meta
    for old in os.listdir(work):            # an older build of the same size
        if old.startswith(f"mail-{label}-") and not old.startswith(f"mail-{label}-{key}"):
            os.unlink(os.path.join(work, old))
    log(f"building {path} (about {label}; a 1 GiB one takes a few minutes)")
    tmp = path + ".part"
    t0 = time.monotonic()
    r = subprocess.run([multiply, "-v", "--clients", "--size", str(size), "--spacing", str(spacing), "-o", tmp] + files,
                       capture_output=True, text=True, timeout=7200)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        die("pcap-multiply failed")
    m = re.search(r"(\d+) copies, (\d+) packets, (\d+) bytes", r.stderr)
    if not m:
        die(f"pcap-multiply said: {r.stderr.strip()}")
    os.replace(tmp, path)
    meta = {"key": key, "path": path, "copies": int(m.group(1)), "packets": int(m.group(2)),
            "bytes": int(m.group(3)), "spacing_s": spacing, "inputs": len(files),
            "build_s": round(time.monotonic() - t0, 1)}
    if os.path.getsize(path) != meta["bytes"]:
        die(f"{path}: size differs from what pcap-multiply reported")
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    return meta


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


def mxray_summary(exe, path):
    """The warm-up of mxray: the NDJSON goes through a pipe; its last line is the summary."""
    p1 = subprocess.Popen([exe, "-q", "--json", "-", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
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
    keys = ("frames", "flows", "peak_flows", "flows_evicted", "peak_reassembly_bytes", "late_packets", "exit_status")
    out = {k: s.get(k) for k in keys}
    out["rc"] = rc
    return out


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


def verdicts(res, big, med):
    by = {(b["tool"], b["file"]): b for b in res}
    mx, mxm = by[("mxray", big)], by[("mxray", med)]
    out = []

    def add(name, value, op, target, fmt="{:.2f}"):
        ok = value <= target if op == "<=" else value >= target
        miss = "" if ok else (f" (x{value / target:.1f} over)" if op == "<=" else f" (x{target / value:.1f} short)")
        out.append({"ratio": name, "value": round(value, 3), "op": op, "target": target,
                    "pass": ok, "text": f"{fmt.format(value)} {op} {target}: {'PASS' if ok else 'MISS'}{miss}"})

    if ("tcpdump", big) in by:
        add("t(mxray) / t(tcpdump read floor)", mx["median_s"] / by[("tcpdump", big)]["median_s"], "<=", 2.5)
    if ("ndpiReader", big) in by:
        add("t(mxray) / t(ndpiReader)", mx["median_s"] / by[("ndpiReader", big)]["median_s"], "<=", 1.0)
    if ("tshark (scaled)", big) in by:
        add("t(tshark fields, scaled) / t(mxray)", by[("tshark (scaled)", big)]["median_s"] / mx["median_s"], ">=", 40)
    add("peak RSS(mxray, BIG) MiB", mx["rss_mib"], "<=", 64, "{:.1f}")
    add("RSS(mxray, BIG) / RSS(mxray, MED)", mx["rss_mib"] / mxm["rss_mib"], "<=", 1.2)
    growth = {"size_x": big_over(mx, mxm, "bytes"), "time_x": mx["median_s"] / mxm["median_s"],
              "rss_x": mx["rss_mib"] / mxm["rss_mib"]}
    growth["time_per_byte_x"] = growth["time_x"] / growth["size_x"]
    return out, growth


def big_over(a, b, k):
    return a[k] / b[k]


# ---------------------------------------------------------------- main

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 MiB and 10 MiB captures, 3 runs: for trying it out")
    ap.add_argument("--runs", type=int, help="timed runs per measurement after the warm-up (default 5; 3 with --quick)")
    ap.add_argument("--tshark-runs", type=int, help="timed runs of tshark (default 3: it is slow)")
    ap.add_argument("--work", default="/tmp/mxbench", help="work directory for captures and results (default /tmp/mxbench)")
    ap.add_argument("--big-mib", type=int, help="size of the big capture (default 1024; 100 with --quick)")
    ap.add_argument("--med-mib", type=int, help="size of the smaller capture (default 100; 10 with --quick)")
    ap.add_argument("--spacing", type=float, default=0.25, help="seconds between copies of the inputs (default 0.25)")
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
    t_start = time.monotonic()

    if not a.no_install:
        install()
    for tool in ("tcpdump", "tshark", "ndpiReader", "cmake"):
        if not shutil.which(tool):
            die(f"{tool} is missing")
    if not os.access("/usr/bin/time", os.X_OK):
        die("/usr/bin/time is missing (Debian package 'time')")
    exe = build()

    files = inputs()
    big = make_capture(work, files, big_mib * MIB, a.spacing)
    med = make_capture(work, files, med_mib * MIB, a.spacing)
    bname, mname = f"{big_mib}MiB", f"{med_mib}MiB"

    benches = [
        {"tool": "mxray", "file": bname, "cap": big, "cmd": [exe, "--json", "/dev/null", big["path"]], "ok_exit": (0, 3), "runs": runs},
        {"tool": "mxray", "file": mname, "cap": med, "cmd": [exe, "--json", "/dev/null", med["path"]], "ok_exit": (0, 3), "runs": runs},
        # Scaling: one thread, and one worker beside the reader and the merge
        # (the default above has one worker per CPU).
        {"tool": "mxray -j0", "file": bname, "cap": big, "cmd": [exe, "-j0", "--json", "/dev/null", big["path"]], "ok_exit": (0, 3), "runs": runs},
        {"tool": "mxray -j1", "file": bname, "cap": big, "cmd": [exe, "-j1", "--json", "/dev/null", big["path"]], "ok_exit": (0, 3), "runs": runs},
        {"tool": "tcpdump", "file": bname, "cap": big, "cmd": ["tcpdump", "-r", big["path"], "-w", "/dev/null"], "ok_exit": (0,), "runs": runs},
        {"tool": "ndpiReader", "file": bname, "cap": big, "cmd": ["ndpiReader", "-i", big["path"], "-q"], "ok_exit": (0,), "runs": runs},
        {"tool": "tshark", "file": mname, "cap": med,
         "cmd": ["tshark", "-r", med["path"], "-T", "fields"] + [x for f in TSHARK_FIELDS for x in ("-e", f)],
         "ok_exit": (0,), "runs": truns},
    ]
    load0 = os.getloadavg()
    log(f"warm-up: one run of each (mxray's also reads its summary); load average {load0[0]:.2f}")
    summaries = {}
    for b in benches:
        if b["tool"] == "mxray":
            summaries[b["file"]] = mxray_summary(exe, b["cap"]["path"])
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
                log(f"round {i + 1}/{rounds}: {b['tool']:<10} {b['file']:>8} {r['wall_s']:8.3f} s {r['rss_kib'] / 1024:8.1f} MiB")
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
    order = [("mxray", bname), ("mxray", mname), ("mxray -j0", bname), ("mxray -j1", bname), ("tcpdump", bname), ("ndpiReader", bname), ("tshark", mname), ("tshark (scaled)", bname)]
    results.sort(key=lambda r: order.index((r["tool"], r["file"])))
    ratios, growth = verdicts(results, bname, mname)

    env = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host_cpus": os.cpu_count(),
           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor()),
           "loadavg_start": round(load0[0], 2), "loadavg_end": round(load1[0], 2),
           "mxray": version([exe, "--version"]),
           "mxray_commit": version(["git", "-C", REPO, "describe", "--always", "--dirty"]),
           "build": "RelWithDebInfo (-O2 -g), build-bench/",
           "tcpdump": version(["tcpdump", "--version"]), "tshark": version(["tshark", "-v"]),
           "ndpiReader": version(["ndpiReader", "-h"], r"nDPI [0-9.]+")}
    doc = {"environment": env, "captures": {bname: big, mname: med}, "runs": runs, "tshark_runs": truns,
           "results": results, "ratios": ratios, "growth": growth, "mxray_summary": summaries,
           "total_s": round(time.monotonic() - t_start, 1)}

    rows = rows_of(results)
    cap_line = (f"BIG {bname}: {big['bytes']} bytes, {big['packets']} packets, {big['copies']} copies of {big['inputs']} captures, "
                f"spacing {big['spacing_s']} s; MED {mname}: {med['bytes']} bytes, {med['packets']} packets, {med['copies']} copies")
    notes = [f"median of {runs} runs after 1 warm-up (tshark: {truns}); wall time; MB/s = 10^6 bytes/s; "
             f"peak RSS = largest maximum RSS of the timed runs (/usr/bin/time -v)",
             f"tshark (scaled) = tshark on {mname} x {scale:.3f} (size ratio); tshark's RSS on {mname}: {tsh['rss_mib']:.0f} MiB",
             cap_line,
             f"mxray growth {mname} -> {bname}: size x{growth['size_x']:.2f}, time x{growth['time_x']:.2f} "
             f"(per byte x{growth['time_per_byte_x']:.2f}), RSS x{growth['rss_x']:.2f}"]
    for f, s in summaries.items():
        r = next(x for x in results if x["tool"] == "mxray" and x["file"] == f)
        per_flow = f"; peak RSS / peak_flows = {r['rss_mib'] * 1024 / s['peak_flows']:.1f} KiB" if s.get("peak_flows") else ""
        notes.append(f"mxray summary {f}: " + ", ".join(f"{k} {v}" for k, v in s.items()) + per_flow)
    by = {(r["tool"], r["file"]): r for r in results}
    one = by[("mxray -j0", bname)]["median_s"]
    workers = min(os.cpu_count() or 1, 16) if (os.cpu_count() or 1) > 1 else 0
    doc["scaling"] = [{"workers": w, "median_s": by[(t, bname)]["median_s"], "speedup": round(one / by[(t, bname)]["median_s"], 3)}
                      for w, t in ((0, "mxray -j0"), (1, "mxray -j1"), (workers, "mxray"))]
    notes.append(f"scaling on {bname}: " + "; ".join(
        f"{'one thread (-j0)' if x['workers'] == 0 else str(x['workers']) + ' worker' + ('s' if x['workers'] > 1 else '')}"
        f"{' (the default)' if x is doc['scaling'][-1] else ''} {fmt_s(x['median_s'])} s, x{x['speedup']:.2f}"
        for x in doc["scaling"]) + " (a worker thread beside the reader and the merge threads)")
    notes.append(f"{env['cpu']}, {env['host_cpus']} CPUs, load average {env['loadavg_start']} at start, {env['loadavg_end']} at end; "
                 f"mxray {env['mxray_commit']} ({env['build']}); {env['tcpdump']}; {env['tshark']}; {env['ndpiReader']}")

    text = [text_table(rows), "", "ratios (issue 11 targets):"] + [f"  {r['ratio']:<38} {r['text']}" for r in ratios]
    text += [""] + [f"  {n}" for n in notes]
    print("\n".join(text))

    md = [f"### mxray benchmark, {env['date']}", "", md_table(HEAD, rows), "",
          md_table(["ratio", "value", "target", "result"],
                   [[r["ratio"], f"{r['value']:.2f}", f"{r['op']} {r['target']}", r["text"].split(": ", 1)[1]] for r in ratios]), ""]
    md += [f"- {n}" for n in notes]
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
