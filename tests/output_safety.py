#!/usr/bin/env python3
"""output_safety.py - what mxray writes, and where (issue 24).

  - --streams DIR: links and files planted in DIR while mxray runs (the
    capture comes through a FIFO, so the test plants them between two halves
    of it) are never followed nor written to: a symbolic link where a stream's
    file is about to be created, a symbolic link and another file put in place
    of a stream's files that the open-file cap (128) had closed. The target
    stays byte for byte and mtime as it was, mxray says which file and fails
    (exit 1), index.json marks the halves not written. Without planting, the
    same capture gives every stream's exact bytes (files closed and reopened),
    and a 4-tuple that repeats gives NAME, NAME_2, NAME_3; 2000 repeats take
    about 4 times the CPU of 500 (naming is O(1) per stream).
  - outputs that are inputs or each other are refused as usage errors (exit
    2) and nothing is written: --html cap cap, --json X --html X, a hard link
    and a symbolic link to the input, standard input, --streams D --extract D,
    -w X --json X, -w - with the timeline on standard output.
  - input names with ESC, an invalid UTF-8 byte and U+202E are escaped on
    stderr (warnings, open errors), in summary.files[].path (valid JSON) and
    in the HTML; bidi controls in wire text are escaped in the text timeline.
  - --live (root): -w FILE with -Z nobody is created by nobody, a symbolic
    link planted at FILE is refused (with -Z and without), and a directory
    nobody may not write is refused: the file is opened after -Z; --json,
    --html, --streams and --extract are created by nobody too.
usage: output_safety.py MXRAY [--live]   (exit 77: skipped)
"""
import json
import os
import pwd
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import pcapgen  # noqa: E402

DEMO = os.path.join(REPO, "pcaps", "demo.pcapng")
PASS, FAIL = [0], [0]


def check(name, cond, detail=""):
    if cond:
        PASS[0] += 1
    else:
        FAIL[0] += 1
        print("FAIL %s%s" % (name, (": " + detail) if detail else ""))


def run(mx, args, timeout=60, **kw):
    """mxray's result; one that has not ended after timeout seconds (a live
    capture that was not refused) is killed and reported as status -9."""
    try:
        return subprocess.run([mx] + args, capture_output=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, -9, e.stdout or b"", e.stderr or b"")


def snapshot(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        return f.read(), st.st_mtime_ns


CLI = [10, 0, 0, 1]
SRV = [10, 0, 1, 1]


def name(cport, sport=25, n=None):
    base = "10.0.0.1.%d-10.0.1.1.%d" % (cport, sport)
    return base if n is None else "%s_%d" % (base, n)


def write_race_capture(p1, p2):
    """Half 1: stream A (port 41000) says a banner and EHLO, then 130 streams
    each send a line and stay open, so that the 128-file cap closes A's files. Half 2 (the
    records only, no file header): A goes on in both directions, and stream C
    (port 41001) starts. Returns the bytes each direction should hold."""
    clock = [1_700_000_000_000_000]
    want = {}
    w = pcapgen.PcapWriter(p1)
    a = pcapgen.TcpConn(w, CLI, SRV, 41000, 25, clock)
    a.handshake()
    a.send(False, b"220 a ready\r\n")
    a.send(True, b"EHLO a\r\n")
    for i in range(130):
        b = pcapgen.TcpConn(w, CLI, SRV, 42000 + i, 25, clock)
        b.handshake()
        line = b"220 b%d\r\n" % i
        b.send(False, line)  # left open: each holds one of the 128 open files
        want[name(42000 + i) + ".s2c"] = line
        want[name(42000 + i) + ".c2s"] = b""
    w.close()
    # The second half continues the same clock and connection state.
    tmp = p2 + ".full"
    w = pcapgen.PcapWriter(tmp)
    a.w = w
    a.send(False, b"250 a ok\r\n")
    a.send(True, b"QUIT\r\n")
    a.close()
    c = pcapgen.TcpConn(w, CLI, SRV, 41001, 25, clock)
    c.handshake()
    c.send(True, b"EHLO c\r\n")
    c.send(False, b"250 c ok\r\n")
    c.close()
    w.close()
    with open(tmp, "rb") as f, open(p2, "wb") as g:
        g.write(f.read()[24:])
    os.unlink(tmp)
    want[name(41000) + ".s2c"] = b"220 a ready\r\n250 a ok\r\n"
    want[name(41000) + ".c2s"] = b"EHLO a\r\nQUIT\r\n"
    want[name(41001) + ".c2s"] = b"EHLO c\r\n"
    want[name(41001) + ".s2c"] = b"250 c ok\r\n"
    return want


def wait_for(paths, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if all(os.path.lexists(p) for p in paths):
            return True
        time.sleep(0.02)
    return False


def test_streams(mx, tmp):
    p1, p2 = os.path.join(tmp, "half1.pcap"), os.path.join(tmp, "half2.rec")
    want = write_race_capture(p1, p2)
    with open(p1, "rb") as f:
        h1 = f.read()
    with open(p2, "rb") as f:
        h2 = f.read()

    # Without planting: every stream's bytes, A's files reopened after the cap.
    whole = os.path.join(tmp, "whole.pcap")
    with open(whole, "wb") as f:
        f.write(h1 + h2)
    d = os.path.join(tmp, "plain")
    r = run(mx, ["-q", "--json", os.devnull, "--streams", d, whole])
    check("streams-plain-exit", r.returncode == 0, r.stderr.decode(errors="replace"))
    for fn, data in want.items():
        p = os.path.join(d, fn)
        got = open(p, "rb").read() if os.path.isfile(p) else None
        check("streams-plain-bytes " + fn, got == data, repr(got))
    idx = json.load(open(os.path.join(d, "index.json")))
    check("streams-plain-index", len(idx["streams"]) == 132, str(len(idx["streams"])))

    # A 4-tuple three times: NAME, NAME_2, NAME_3, each with its own bytes.
    rep = os.path.join(tmp, "repeat.pcap")
    clock = [1_700_000_000_000_000]
    with pcapgen.PcapWriter(rep) as w:
        for k in range(3):
            c = pcapgen.TcpConn(w, CLI, SRV, 43000, 25, clock, cseq=1000 + 100000 * k, sseq=5000 + 100000 * k)
            c.handshake()
            c.send(False, b"220 run %d\r\n" % k)
            c.close()
            clock[0] += 10_000_000
    d = os.path.join(tmp, "repeat")
    r = run(mx, ["-q", "--json", os.devnull, "--streams", d, rep])
    check("streams-repeat-exit", r.returncode == 0, r.stderr.decode(errors="replace"))
    for k, n in enumerate([None, 2, 3]):
        p = os.path.join(d, name(43000, 25, n) + ".s2c")
        got = open(p, "rb").read() if os.path.isfile(p) else None
        check("streams-repeat-name %s" % os.path.basename(p), got == b"220 run %d\r\n" % k, repr(got))

    # Naming costs the same for the 2000th repeat as for the first: CPU time
    # at 500 and 2000 repeats of one 4-tuple grows about linearly (trying
    # NAME, NAME_2, ... with one open() each made it quadratic: 12.5 million
    # open() calls for 5000 repeats). The files go to a tmpfs, where creating
    # one costs microseconds whatever the disk is doing; without one, the
    # names are checked but not the time.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    fast = tempfile.mkdtemp(prefix="mx-outsafe-", dir=shm) if shm else tmp
    cpu = {}
    for reps in (500, 2000):
        cap = os.path.join(tmp, "reuse%d.pcap" % reps)
        clock = [1_700_000_000_000_000]
        with pcapgen.PcapWriter(cap) as w:
            for k in range(reps):
                c = pcapgen.TcpConn(w, CLI, SRV, 43001, 25, clock, cseq=(1000 + 100000 * k) & 0xFFFFFFFF,
                                    sseq=(5000 + 100000 * k) & 0xFFFFFFFF)
                c.handshake()
                c.send(False, b"220 x\r\n")
                c.close()
                clock[0] += 10_000_000
        d = os.path.join(fast, "reuse%d" % reps)
        p = subprocess.Popen([mx, "-q", "--json", os.devnull, "--streams", d, cap])
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        cpu[reps] = ru.ru_utime + ru.ru_stime
        check("streams-reuse-%d-exit" % reps, p.returncode == 0)
        check("streams-reuse-%d-last-name" % reps, os.path.isfile(os.path.join(d, name(43001, 25, reps) + ".s2c")))
        shutil.rmtree(d, ignore_errors=True)
    if shm:
        os.rmdir(fast)
        check("streams-naming-linear", cpu[2000] < max(8 * cpu[500], 1.0), "CPU %.2f s for 500, %.2f s for 2000" %
              (cpu[500], cpu[2000]))
    else:
        print("output_safety: no writable /dev/shm: the time of naming is not checked")

    # The race: links planted in DIR after mxray found it empty.
    d = os.path.join(tmp, "race")
    target = os.path.join(tmp, "target")
    with open(target, "wb") as f:
        f.write(b"precious\n")
    os.utime(target, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    before = snapshot(target)
    fifo = os.path.join(tmp, "in.fifo")
    os.mkfifo(fifo)
    proc = subprocess.Popen([mx, "-q", "--json", os.devnull, "--streams", d, fifo],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The FIFO opens once mxray has checked DIR empty and created index.json.
    fd = os.open(fifo, os.O_WRONLY)
    os.write(fd, h1)
    a_c2s, a_s2c = os.path.join(d, name(41000) + ".c2s"), os.path.join(d, name(41000) + ".s2c")
    last_b = [os.path.join(d, name(42000 + i) + ".s2c") for i in (128, 129)]
    ok = wait_for([a_c2s, a_s2c] + last_b)
    check("race-first-half-read", ok, "mxray did not create the files of the first half")
    # A's files were closed by the cap; replace them. C's are not created yet.
    # A while after A's files were closed, so that the file planted in place
    # of A.c2s, which may reuse its inode number and has its size and owner,
    # has a later change time even on a filesystem with coarse timestamps.
    time.sleep(0.05)
    os.unlink(a_s2c)
    os.symlink(target, a_s2c)
    os.unlink(a_c2s)
    with open(a_c2s, "wb") as f:
        f.write(b"planted\n")
    c_c2s, c_s2c = os.path.join(d, name(41001) + ".c2s"), os.path.join(d, name(41001) + ".s2c")
    os.symlink(target, c_c2s)
    os.symlink(os.path.join(tmp, "absent"), c_s2c)  # a dangling link: nothing must be created through it
    os.write(fd, h2)
    os.close(fd)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    err = err.decode(errors="replace")
    check("race-exit-1", proc.returncode == 1, "exit %s: %s" % (proc.returncode, err))
    check("race-target-untouched", snapshot(target) == before, repr(snapshot(target)))
    check("race-nothing-through-dangling-link", not os.path.lexists(os.path.join(tmp, "absent")))
    check("race-links-stay-links", os.path.islink(a_s2c) and os.path.islink(c_c2s) and os.path.islink(c_s2c))
    check("race-planted-file-untouched", open(a_c2s, "rb").read() == b"planted\n")
    check("race-says-which", "--streams" in err and name(41000) in err, err)
    check("race-counts-the-rest", re.search(r"--streams: 4 files could not be written", err) is not None, err)
    idx = json.load(open(os.path.join(d, "index.json")))
    by_port = {s["client_port"]: s for s in idx["streams"]}
    check("race-index-marks", all(by_port[p][h].get("written") is False
                                  for p in (41000, 41001) for h in ("c2s", "s2c")), json.dumps(by_port.get(41000)))
    check("race-others-written", all("written" not in by_port[42000 + i]["s2c"] for i in range(130)))
    for i in range(130):
        p = os.path.join(d, name(42000 + i) + ".s2c")
        if open(p, "rb").read() != b"220 b%d\r\n" % i:
            check("race-other-bytes " + p, False)
            break


def test_refusals(mx, tmp):
    cap = os.path.join(tmp, "cap.pcap")
    shutil.copy(DEMO, cap)
    orig = snapshot(cap)

    def refused(tag, args, stdin=None, absent=(), timeout=60):
        r = run(mx, args, stdin=stdin, timeout=timeout)
        err = r.stderr.decode(errors="replace")
        check("refuse-" + tag, r.returncode == 2 and "same file" in err, "exit %d: %s" % (r.returncode, err))
        check("refuse-%s-input-kept" % tag, snapshot(cap) == orig)
        for p in absent:
            check("refuse-%s-nothing-written" % tag, not os.path.exists(p), p)

    refused("html-is-input", ["--html", cap, cap])
    x = os.path.join(tmp, "X")
    refused("json-html-same", ["--json", x, "--html", x, cap], absent=[x])
    refused("json-html-spelled-apart", ["--json", x, "--html", os.path.join(tmp, ".", "X"), cap], absent=[x])
    hard, soft = os.path.join(tmp, "hard.pcap"), os.path.join(tmp, "soft.pcap")
    os.link(cap, hard)
    os.symlink(cap, soft)
    refused("hard-link", ["--json", hard, cap])
    refused("symlink", ["--html", soft, cap])
    with open(cap, "rb") as f:
        refused("stdin", ["--json", cap, "-"], stdin=f)
    sd = os.path.join(tmp, "sd")
    refused("streams-extract", ["--streams", sd, "--extract", sd, cap])
    refused("w-json", ["-i", "lo", "-w", x, "--json", x], absent=[x], timeout=5)
    # -w - and the timeline would mix packets and text on standard output.
    r = run(mx, ["-i", "lo", "-w", "-"], timeout=5)
    check("refuse-w-dash-and-timeline", r.returncode == 2 and b"standard output" in r.stderr, repr(r.stderr))
    # A device is no file to write over: /dev/null takes any number of outputs.
    r = run(mx, ["--json", os.devnull, "--html", os.devnull, cap])
    check("devnull-twice", r.returncode == 0, r.stderr.decode(errors="replace"))
    # Distinct outputs still work.
    r = run(mx, ["--json", os.path.join(tmp, "a.json"), "--html", os.path.join(tmp, "a.html"), cap])
    check("distinct-outputs", r.returncode == 0, r.stderr.decode(errors="replace"))


def test_names(mx, tmp):
    raw = b"ev\x1b[31mil\xff\xe2\x80\xaeboh.pcap"
    good = os.path.join(tmp.encode(), raw)
    cut = os.path.join(tmp.encode(), b"t" + raw)
    shutil.copy(DEMO, good)
    with open(DEMO, "rb") as f, open(cut, "wb") as g:
        g.write(f.read()[:10000])  # ends inside a record: a warning names the file
    j, h = os.path.join(tmp, "n.json"), os.path.join(tmp, "n.html")
    r = run(mx, ["--json", j, "--html", h, good, cut])
    check("names-exit-3", r.returncode == 3, r.stderr.decode(errors="replace"))
    bad = [b"\x1b", b"\xff", b"\xe2\x80\xae"]
    check("names-stderr-escaped", not any(b in r.stderr for b in bad) and b"tev\\x1b[31mil\\xff\\u202eboh.pcap" in r.stderr,
          repr(r.stderr))
    data = open(j, "rb").read()
    try:
        recs = [json.loads(l) for l in data.decode("utf-8", errors="strict").splitlines()]
    except ValueError as e:
        recs = []
        check("names-json-valid", False, str(e))
    check("names-json-no-raw", not any(b in data for b in bad[:2]))
    paths = [f["path"] for r_ in recs if r_["type"] == "summary" for f in r_["files"]]
    check("names-json-path", paths == [os.path.join(tmp, "ev\x1b[31mil\\xff\u202eboh.pcap"),
                                       os.path.join(tmp, "tev\x1b[31mil\\xff\u202eboh.pcap")], repr(paths))
    html = open(h, "rb").read()
    check("names-html-escaped", not any(b in html for b in bad) and b"ev\\x1b[31mil\\xff\\u202eboh.pcap" in html)
    r = run(mx, [os.path.join(tmp.encode(), b"missing-" + raw)])
    check("names-open-error", r.returncode == 1 and not any(b in r.stderr for b in bad) and b"missing-ev\\x1b" in r.stderr,
          repr(r.stderr))

    # Bidi controls in wire text: escaped in the text timeline as in the HTML.
    cap = os.path.join(tmp, "bidi.pcap")
    banner = "220 mail.example \u202egnp.exe\u202c \u200f\u061c\u2066x\u2069 \u200e\u202a\u202b\u202d\u2067\u2068 ready\r\n"
    pcapgen.sessions_to_pcap([{"port": 25, "turns": [["s", banner], ["c", "QUIT\r\n"], ["s", "221 bye\r\n"]]}], cap)
    r = run(mx, ["--color", "never", cap])
    out = r.stdout.decode("utf-8")
    controls = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    check("bidi-timeline-no-raw", not any(c in out for c in controls), repr(out))
    want = "220 mail.example \\u202egnp.exe\\u202c \\u200f\\u061c\\u2066x\\u2069 \\u200e\\u202a\\u202b\\u202d\\u2067\\u2068 ready"
    check("bidi-timeline-escaped", want in out, repr(out))
    r = run(mx, ["--html", "-", cap])
    out = r.stdout.decode("utf-8")
    check("bidi-html-escaped", not any(c in out for c in controls) and want in out)


def test_live(mx, tmp):
    if os.geteuid() != 0:
        print("output_safety --live: skipped: -Z and live capture need root")
        sys.exit(77)
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        print("output_safety --live: skipped: no user nobody")
        sys.exit(77)
    os.chmod(tmp, 0o755)
    wdir = os.path.join(tmp, "w")
    os.mkdir(wdir)
    os.chmod(wdir, 0o1777)  # nobody may create files here

    def live(args):
        """Runs mxray -i lo until it listens, then SIGINT; (status, stderr)."""
        p = subprocess.Popen([mx, "-i", "lo", "--json", os.devnull] + args,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = b""
        end = time.time() + 20
        while time.time() < end and b"listening on" not in err:
            ready, _, _ = select.select([p.stderr], [], [], 0.2)
            if ready:
                chunk = os.read(p.stderr.fileno(), 4096)
                if not chunk:
                    break
                err += chunk
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        try:
            rest = p.communicate(timeout=20)[1]
        except subprocess.TimeoutExpired:
            p.kill()
            rest = p.communicate()[1]
        return p.returncode, (err + rest).decode(errors="replace")

    w = os.path.join(wdir, "w.pcap")
    st, err = live(["-w", w, "-Z", "nobody"])
    if "listening on" not in err and "-w" not in err:
        print("output_safety --live: skipped: cannot capture on lo: " + err.strip())
        sys.exit(77)
    check("live-w-exit", st == 0, err)
    check("live-w-owned-by-Z-user", os.path.exists(w) and os.stat(w).st_uid == nobody.pw_uid,
          str(os.stat(w).st_uid) if os.path.exists(w) else "absent")
    check("live-w-is-pcap", os.path.exists(w) and open(w, "rb").read(4) == b"\xd4\xc3\xb2\xa1")

    target = os.path.join(tmp, "target")
    with open(target, "wb") as f:
        f.write(b"precious\n")
    before = snapshot(target)
    link = os.path.join(wdir, "link.pcap")
    os.symlink(target, link)
    for tag, extra in (("with-Z", ["-Z", "nobody"]), ("as-root", [])):
        st, err = live(["-w", link] + extra)
        check("live-symlink-refused-" + tag, st == 1 and "symbolic link" in err, "exit %s: %s" % (st, err))
        check("live-symlink-target-untouched-" + tag, snapshot(target) == before)
    # Every output is created after -Z, by the -Z user: the reports, --streams and --extract.
    outs = {"json": os.path.join(wdir, "r.json"), "html": os.path.join(wdir, "r.html"),
            "streams": os.path.join(wdir, "streams"), "extract": os.path.join(wdir, "extract")}
    st, err = live(["--json", outs["json"], "--html", outs["html"], "--streams", outs["streams"],
                    "--extract", outs["extract"], "-Z", "nobody"])
    check("live-outputs-exit", st == 0, err)
    for what, path in sorted(outs.items()):
        check("live-%s-owned-by-Z-user" % what, os.path.exists(path) and os.stat(path).st_uid == nobody.pw_uid,
              str(os.stat(path).st_uid) if os.path.exists(path) else "absent")
    # A directory only root may write: the -Z user cannot create the file there.
    rdir = os.path.join(tmp, "rootonly")
    os.mkdir(rdir, 0o755)
    st, err = live(["-w", os.path.join(rdir, "w.pcap"), "-Z", "nobody"])
    check("live-w-opened-after-Z", st == 1 and "Permission denied" in err and not os.path.exists(os.path.join(rdir, "w.pcap")),
          "exit %s: %s" % (st, err))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mx = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="mx-outsafe-")
    try:
        if "--live" in sys.argv[2:]:
            test_live(mx, tmp)
        else:
            test_streams(mx, tmp)
            test_refusals(mx, tmp)
            test_names(mx, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("output_safety%s: %d passed, %d failed" % (" --live" if "--live" in sys.argv else "", PASS[0], FAIL[0]))
    sys.exit(1 if FAIL[0] else 0)


if __name__ == "__main__":
    main()
