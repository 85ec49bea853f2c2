#!/usr/bin/env python3
"""same-output - proves that a change kept every byte a user sees.

usage: scripts/same-output.py [--base REV] [--new MXRAY] [--jobs N] [--mode M,...] [--show N]

Builds mxray from REV (default: the commit before the architecture work of
issue 23) in .cache/same-output/, then runs that binary and MXRAY (default:
build/mxray) on every capture of pcaps/ and of ../shared/corpus/ (the .gz
ones unpacked first), each on its own and all of one set together, in every
output mode: --json, the timeline (plain and coloured), --explain,
--failures, --html, audit, --streams and --extract, --show-secrets, one
thread (-j0) and --no-ndpi. Runs of several files use one thread: with
workers, which one warns first of a kind of damage depends on timing. A run's standard output, standard error, exit
status and every file it wrote must be the same bytes. Prints each
difference, then "N identical, M different"; exits 1 if any differs. Command
lines that read no capture (usage, the version, refusals) are compared too.
Restructuring keeps behaviour: run this before every commit that moves code.
"""
import argparse, concurrent.futures as cf, gzip, hashlib, os, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus")
CACHE = os.path.join(ROOT, ".cache", "same-output")
# The last commit before issue 23 (the restructuring): the reference output.
BEFORE = "6227e1cbbc1606fa0c38632a792144562dd0b8c1"

# Mode -> (arguments before the captures, files the run writes in its directory).
MODES = {
    "json": (["--json", "-"], []),
    "text": ([], []),
    "color": (["--color", "always"], []),
    "explain": (["--explain"], []),
    "failures": (["--failures"], []),
    "html": (["--html", "report.html"], ["report.html"]),
    "html-stdout": (["--html", "-", "--html-diagrams", "3"], []),
    "audit": (["audit"], []),
    "audit-json": (["audit", "--json", "-"], []),
    "streams": (["--streams", "streams", "--json", "-"], ["streams"]),
    "extract": (["--extract", "extract", "--json", "-"], ["extract"]),
    "secrets": (["--show-secrets", "--json", "-", "-j0"], []),
    "no-ndpi": (["--no-ndpi", "--explain"], []),
}


# Command lines without a capture to read: usage, the version, refusals.
ALONE = [
    ["--help"], ["-V"], [], ["--bogus"], ["--color", "pink", "x.pcap"], ["-j", "99", "x.pcap"],
    ["--max-flows", "0", "x.pcap"], ["--memory", "8", "x.pcap"], ["--port", "ftp=21", "x.pcap"],
    ["--port", "smtp=0", "x.pcap"], ["--json", "-", "--html", "-", "x.pcap"], ["-f", "tcp", "x.pcap"],
    ["-i", "lo", "x.pcap"], ["no-such-file.pcap"], ["audit"], ["--html-diagrams", "0", "x.pcap"],
]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build_base(rev):
    """mxray built from rev, in the cache (built once per commit)."""
    sha = sh(["git", "-C", ROOT, "rev-parse", rev + "^{commit}"], capture_output=True, text=True).stdout.strip()
    src = os.path.join(CACHE, "src-" + sha[:12])
    bld = os.path.join(CACHE, "build-" + sha[:12])
    exe = os.path.join(bld, "mxray")
    if os.path.exists(exe):
        return exe, sha
    if not os.path.isdir(src):
        os.makedirs(src + ".tmp", exist_ok=True)
        arch = subprocess.Popen(["git", "-C", ROOT, "archive", sha], stdout=subprocess.PIPE)
        sh(["tar", "-x", "-C", src + ".tmp"], stdin=arch.stdout)
        if arch.wait() != 0:
            sys.exit("same-output: git archive " + sha + " failed")
        os.rename(src + ".tmp", src)
    print(f"same-output: building {sha[:12]} in {bld}", file=sys.stderr)
    sh(["cmake", "-S", src, "-B", bld, "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DBUILD_TESTING=OFF"],
       stdout=subprocess.DEVNULL)
    sh(["cmake", "--build", bld, "-j", str(os.cpu_count() or 2), "--target", "mxray"], stdout=subprocess.DEVNULL)
    return exe, sha


def captures(tmp):
    """(name, path) of every capture: pcaps/ and the corpus, .gz unpacked."""
    own = []
    for d, _, files in os.walk(os.path.join(ROOT, "pcaps")):
        own += [os.path.join(d, f) for f in files if f.endswith((".pcap", ".pcapng"))]
    caps = [(os.path.relpath(p, ROOT), p) for p in sorted(own)]
    corpus = []
    manifest = os.path.join(CORPUS, "MANIFEST.tsv")
    if os.path.exists(manifest):
        with open(manifest, encoding="utf-8") as f:
            rows = f.read().splitlines()
        col = rows[0].split("\t").index("path")
        for r in rows[1:]:
            if not r.strip():
                continue
            rel = r.split("\t")[col]
            path = os.path.join(CORPUS, rel)
            if rel.endswith(".gz"):
                out = os.path.join(tmp, hashlib.sha1(rel.encode()).hexdigest()[:12] + "-" +
                                   os.path.basename(rel)[:-3])
                with gzip.open(path, "rb") as i, open(out, "wb") as o:
                    shutil.copyfileobj(i, o)
                path = out
            corpus.append(("corpus/" + rel, path))
    else:
        print("same-output: ../shared/corpus is absent: only pcaps/ is compared", file=sys.stderr)
    return caps, corpus


def snapshot(d, names):
    """Every file a run wrote, as {relative path: bytes}."""
    got = {}
    for n in names:
        p = os.path.join(d, n)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                got[n] = f.read()
        elif os.path.isdir(p):
            for sub, _, files in os.walk(p):
                for fn in files:
                    fp = os.path.join(sub, fn)
                    with open(fp, "rb") as f:
                        got[os.path.relpath(fp, d)] = f.read()
        else:
            got[n] = None
    return got


def run_one(exe, mode, paths, work, extra=()):
    args, outputs = MODES[mode]
    args = args + list(extra)
    if len(paths) > 1:
        # Several files with worker threads: which worker warns first of a
        # kind of damage (stderr) depends on timing, in every version.
        args = args + ["-j0"]
    os.makedirs(work)
    env = dict(os.environ, LC_ALL="C")
    env.pop("NO_COLOR", None)
    p = subprocess.run([exe] + args + paths, cwd=work, capture_output=True, env=env, timeout=900)
    res = {"stdout": p.stdout, "stderr": p.stderr.replace(exe.encode(), b"MXRAY"), "status": p.returncode}
    res.update(snapshot(work, outputs))
    shutil.rmtree(work)
    return res


def first_diff(a, b):
    if a is None or b is None:
        return "present in one run only"
    n = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    return f"{len(a)} vs {len(b)} bytes, first difference at byte {n}: {a[max(0, n - 40):n + 40]!r} vs {b[max(0, n - 40):n + 40]!r}"


def compare(job):
    name, mode, paths, base, new, tmp, new_args = job
    key = hashlib.sha1((name + "\0" + mode).encode()).hexdigest()[:16]
    a = run_one(base, mode, paths, os.path.join(tmp, key + "-a"))
    b = run_one(new, mode, paths, os.path.join(tmp, key + "-b"), new_args)
    diffs = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            va, vb = a.get(k), b.get(k)
            if isinstance(va, int) or isinstance(vb, int):
                diffs.append(f"{k}: {va} vs {vb}")
            else:
                diffs.append(f"{k}: {first_diff(va, vb)}")
    return name, mode, diffs


def main():
    ap = argparse.ArgumentParser(description="same bytes from the base commit's mxray and this one")
    ap.add_argument("--base", default=BEFORE, help="the reference commit (default: before issue 23)")
    ap.add_argument("--new", default=os.path.join(ROOT, "build", "mxray"), help="the mxray to check")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--mode", default=",".join(MODES), help="modes to run (comma-separated)")
    ap.add_argument("--show", type=int, default=20, help="differences printed at most")
    ap.add_argument("--new-args", default="", help="arguments for the new mxray only, e.g. '--hashes all' to ask "
                    "for what the base computed by default")
    opts = ap.parse_args()
    new_args = opts.new_args.split()
    modes = [m for m in opts.mode.split(",") if m]
    for m in modes:
        if m not in MODES:
            sys.exit(f"same-output: no mode {m} (modes: {', '.join(MODES)})")
    new = os.path.abspath(opts.new)
    if not os.access(new, os.X_OK):
        sys.exit(f"same-output: {new} is not an executable (build it first)")
    base, sha = build_base(opts.base)
    tmp = tempfile.mkdtemp(prefix="same-output-")
    try:
        caps, corpus = captures(tmp)
        jobs = []
        for mode in modes:
            for name, path in caps + corpus:
                jobs.append((name, mode, [path], base, new, tmp, new_args))
            # Each set read as one capture: frames numbered across files, one audit.
            for label, group in (("pcaps/ together", caps), ("corpus together", corpus)):
                if group:
                    jobs.append((label, mode, [p for _, p in group], base, new, tmp, new_args))
        same = different = shown = 0
        for k, argv in enumerate(ALONE):
            out = []
            for exe in (base, new):
                work = os.path.join(tmp, f"alone-{k}-{len(out)}")
                os.makedirs(work)
                p = subprocess.run([exe] + argv, cwd=work, capture_output=True, timeout=60)
                out.append((p.returncode, p.stdout, p.stderr.replace(exe.encode(), b"MXRAY")))
                shutil.rmtree(work)
            if out[0] == out[1]:
                same += 1
            else:
                different += 1
                print(f"DIFFERENT mxray {' '.join(argv)}: {out[0]!r} vs {out[1]!r}"[:600])
        with cf.ThreadPoolExecutor(max_workers=opts.jobs) as pool:
            for name, mode, diffs in pool.map(compare, jobs):
                if not diffs:
                    same += 1
                    continue
                different += 1
                if shown < opts.show:
                    shown += 1
                    print(f"DIFFERENT {name} [{mode}]")
                    for d in diffs[:5]:
                        print("   " + d)
        print(f"same-output: base {sha[:12]} against {new}: {len(caps)} + {len(corpus)} captures, "
              f"{len(modes)} modes, {len(ALONE)} command lines without a capture")
        print(f"{same} identical, {different} different")
        return 1 if different else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
