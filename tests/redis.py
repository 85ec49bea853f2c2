#!/usr/bin/env python3
"""redis - `--redis URL` against a real redis-server (issue 29).

usage: tests/redis.py MXRAY

Starts its own redis-server on free loopback ports (never the system's), and
checks:
  a. the records read back (XRANGE, or LRANGE with --redis-list) are the
     lines --json writes, byte for byte and in order: in one run with both
     outputs and in separate runs, with worker threads, with --sensor (right
     after "type"), with AUTH and a database number, over a unix socket;
  b. a server restarted in the middle of a run (mxray reading a capture from
     a pipe) costs nothing with the default queue, and with a 1 MiB queue
     only what the summary counts as dropped; sent + dropped accounts for
     every record but the summary; a record stored twice only if resent > 0;
  c. a server that never answers (accepts and never reads; a full backlog;
     nobody listening) does not hang mxray: it ends within 30 s, says on
     stderr what was not delivered, exits 1, and the --json summary counts it;
  d. the command line refuses a bad --sensor, --redis URL or companion
     option, or one without --redis (exit 2), and never prints the URL's
     password.
Skipped (exit 77) when redis-server is not installed (scripts/setup.sh).
"""
import glob, json, os, shutil, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDIS = shutil.which("redis-server")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}", flush=True)
    return cond


class RedisError(Exception):
    pass


class Client:
    """A RESP2 client (the Redis protocol spec): commands as arrays of bulk strings."""

    def __init__(self, port=None, path=None, timeout=10):
        if path:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(timeout)
            self.s.connect(path)
        else:
            self.s = socket.create_connection(("127.0.0.1", port), timeout)
        self.f = self.s.makefile("rb")

    def close(self):
        self.f.close()
        self.s.close()

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")

    def stream(self, key):
        """The 'record' field of every entry of the stream, in order (XRANGE, in pages)."""
        out, start = [], "-"
        while True:
            page = self.cmd("XRANGE", key, start, "+", "COUNT", 5000)
            for _id, fields in page:
                check(len(fields) == 2 and fields[0] == b"record", f"stream {key}: an entry is one field 'record'")
                out.append(fields[1])
            if len(page) < 5000:
                return out
            start = "(" + page[-1][0].decode()

    def list(self, key):
        return self.cmd("LRANGE", key, 0, -1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A redis-server of the test's own, on a loopback port (and a unix socket)."""

    def __init__(self, tmp, name, extra=()):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.sock = os.path.join(self.dir, "redis.sock")
        self.extra = list(extra)
        self.proc = None

    def start(self):
        args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "-::1", "--dir", self.dir, "--save", "",
                "--appendonly", "no", "--unixsocket", self.sock, "--unixsocketperm", "700",
                "--logfile", os.path.join(self.dir, "log")] + self.extra
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = Client(path=self.sock, timeout=1)
                try:
                    c.cmd("PING")
                except RedisError:
                    pass  # NOAUTH: it is up
                c.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def client(self, password=None):
        c = Client(path=self.sock)
        if password:
            c.cmd("AUTH", password)
        return c


def mxray(mx, args, stdin=None, timeout=60):
    """Runs mxray; returns (status, stdout, stderr, seconds)."""
    t = time.time()
    p = subprocess.run([mx] + args, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace"), time.time() - t


def lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")[:-1]


def summary_of(recs):
    s = json.loads(recs[-1])
    check(s.get("type") == "summary", "the last record is the summary")
    return s


def same_records(got, want, what):
    if got == want:
        return True
    n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    check(False, f"{what}: {len(got)} records stored, {len(want)} written by --json; first difference at {n}")
    return False


def part_a(mx, tmp, srv):
    """The stream and the list hold exactly what --json writes."""
    demo = os.path.join(ROOT, "pcaps", "demo.pcapng")
    own = sorted(glob.glob(os.path.join(ROOT, "pcaps", "**", "*.pcap*"), recursive=True))
    bigger = sorted(glob.glob(os.path.join(ROOT, "pcaps", "keylog", "*.pcap")))[:3]
    url = f"redis://127.0.0.1:{srv.port}"
    c = srv.client()
    jf = os.path.join(tmp, "a.json")
    runs = [("demo -j0", ["-j0"], [demo]), ("all pcaps -j2", ["-j2"], own),
            ("keylog captures -j2", ["-j2"], bigger), ("demo --sensor lab1", ["-j0", "--sensor", "lab1"], [demo])]
    for k, (name, opts, files) in enumerate(runs):
        key = f"a{k}"
        st, out, err, _ = mxray(mx, opts + ["-q", "--json", jf, "--redis", url, "--redis-key", key] + files)
        check(st in (0, 3), f"{name}: exit {st}: {err.strip()}")
        want = lines(jf)
        got = c.stream(key)
        same_records(got, want, name)
        red = summary_of(want).get("redis", {})
        check(red.get("sent") == len(want) - 1 and red.get("dropped") == 0 and red.get("key") == key and
              red.get("server") == f"127.0.0.1:{srv.port}", f"{name}: the summary's redis object {red}")
        if "--sensor" in opts:
            check(all(r.startswith(b'{"type":"') and b'","sensor":"lab1",' in r[:60] for r in got),
                  f"{name}: every record has sensor right after type")
    # --redis alone (no timeline on stdout), beside a --json run of its own: the same
    # records; the summaries differ by the redis object only.
    st, out, err, _ = mxray(mx, ["-q", "-j2", "--redis", url, "--redis-key", "alone"] + own)
    check(st in (0, 3) and out == b"", f"--redis alone: exit {st}, {len(out)} bytes on stdout")
    st2, _, _, _ = mxray(mx, ["-q", "-j0", "--json", jf] + own)
    check(st2 == st, f"--redis alone: exit {st}, --json alone {st2}")
    want, got = lines(jf), c.stream("alone")
    if same_records(got[:-1], want[:-1], "--redis alone against --json alone"):
        s = json.loads(got[-1])
        del s["redis"]
        check(s == json.loads(want[-1]), "--redis alone: the summary is --json's with the redis object")
    # A list; with a sensor that needs escaping.
    sensor = 'lab "2" \\ é'
    st, _, err, _ = mxray(mx, ["-q", "-j0", "--sensor", sensor, "--json", jf, "--redis", url, "--redis-list",
                               "--redis-key", "l1", "--redis-maxlen", "0", demo])
    want = lines(jf)
    same_records(c.list("l1"), want, "--redis-list")
    check(all(json.loads(r)["sensor"] == sensor for r in want), "--sensor is escaped as JSON")
    check(c.cmd("TYPE", "l1") == "list" and c.cmd("TYPE", "a0") == "stream", "--redis-list makes a list, else a stream")
    # WRONGTYPE: a stream key that is a list refuses every record, counted and said.
    st, _, err, _ = mxray(mx, ["-j0", "--json", jf, "--redis", url, "--redis-key", "l1", demo])
    red = summary_of(lines(jf)).get("redis", {})
    check(st == 1 and "WRONGTYPE" in err and "were not delivered" in err and red.get("dropped") == len(lines(jf)) - 1,
          f"WRONGTYPE: exit {st}, {red}, stderr {err.strip()[:300]}")
    # A unix socket; IPv6 loopback when there is one ("-::1": bound if it can be).
    st, _, err, _ = mxray(mx, ["-q", "-j0", "--json", jf, "--redis", "unix:" + srv.sock, "--redis-key", "u", demo])
    same_records(c.stream("u"), lines(jf), "unix:PATH")
    try:
        socket.create_connection(("::1", srv.port), 2).close()
        st, _, err, _ = mxray(mx, ["-q", "-j0", "--json", jf, "--redis", f"redis://[::1]:{srv.port}/0",
                                   "--redis-key", "v6", demo])
        same_records(c.stream("v6"), lines(jf), "redis://[::1]:PORT/0")
        check(summary_of(lines(jf))["redis"]["server"] == f"[::1]:{srv.port}", "an IPv6 server is named [::1]:PORT")
    except OSError:
        print("  (no IPv6 loopback: redis://[::1] not checked)")
    c.close()


def part_auth(mx, tmp):
    """AUTH (requirepass) and a database number; a wrong password is never printed."""
    srv = Server(tmp, "auth", ["--requirepass", "s3cr3t@x"])
    srv.start()
    try:
        demo = os.path.join(ROOT, "pcaps", "demo.pcapng")
        jf = os.path.join(tmp, "auth.json")
        st, _, err, _ = mxray(mx, ["-q", "-j0", "--json", jf, "--redis", f"redis://:s3cr3t%40x@127.0.0.1:{srv.port}/3",
                                   demo])
        c = srv.client("s3cr3t@x")
        c.cmd("SELECT", 3)
        same_records(c.stream("mxray"), lines(jf), "AUTH and /3")
        c.cmd("SELECT", 0)
        check(c.cmd("EXISTS", "mxray") == 0, "nothing in database 0")
        c.close()
        st, _, err, t = mxray(mx, ["-j0", "--json", jf, "--redis",
                                   f"redis://default:WRONGpw99@127.0.0.1:{srv.port}", demo])
        check(st == 1 and "WRONGpw99" not in err and "were not delivered" in err and t < 30,
              f"wrong password: exit {st} after {t:.1f}s, stderr {err.strip()[:300]}")
    finally:
        srv.stop()


def feed(mx, args, cap, steps):
    """Runs mxray reading cap from a pipe; steps[i](proc) runs after the i-th of len(steps)+1 parts is written."""
    data = open(cap, "rb").read()
    p = subprocess.Popen([mx] + args + ["-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    errs = []
    t = threading.Thread(target=lambda: errs.append(p.stderr.read()))
    t.start()
    n = len(steps) + 1
    for i in range(n):
        p.stdin.write(data[len(data) * i // n:len(data) * (i + 1) // n])
        p.stdin.flush()
        if i < len(steps):
            steps[i](p)
    p.stdin.close()
    st = p.wait(120)
    t.join()
    return st, errs[0].decode(errors="replace")


def wait_stable(c, key, timeout=15):
    """Waits until the stream has entries and stops growing for 0.5 s."""
    deadline, last, since = time.time() + timeout, -1, time.time()
    while time.time() < deadline:
        n = c.cmd("XLEN", key)
        if n != last:
            last, since = n, time.time()
        elif n > 0 and time.time() - since > 0.5:
            return n
        time.sleep(0.1)
    return last


def compare_with_drops(got, want, red, what):
    """got: the stream; want: the --json lines. Every record is stored in order but for the
    dropped ones; a record may be stored twice only when resent > 0."""
    j = dups = 0
    missing = []
    pos = {}
    for i, r in enumerate(want):
        pos.setdefault(r, []).append(i)
    for r in got:
        if j < len(want) and r == want[j]:
            j += 1
            continue
        later = [i for i in pos.get(r, []) if i >= j]
        earlier = [i for i in pos.get(r, []) if i < j]
        if later:
            missing.extend(range(j, later[0]))
            j = later[0] + 1
        elif earlier:
            dups += 1
        else:
            check(False, f"{what}: a stored record --json did not write: {r[:120]!r}")
            return
    missing.extend(range(j, len(want)))
    check(dups == 0 or red["resent"] > 0, f"{what}: {dups} records stored twice with resent 0")
    check(dups <= red["resent"], f"{what}: {dups} records stored twice, more than resent {red['resent']}")
    check(len(missing) == red["dropped"], f"{what}: {len(missing)} records missing, dropped says {red['dropped']}")
    check(red["sent"] + red["dropped"] == len(want) - 1, f"{what}: sent + dropped = {red['sent'] + red['dropped']}, "
          f"records but the summary {len(want) - 1}")


def part_b(mx, tmp, cap):
    """A server restarted in the middle of a run."""
    srv = Server(tmp, "restart")
    srv.start()
    try:
        url = f"redis://127.0.0.1:{srv.port}"
        jf = os.path.join(tmp, "b.json")
        st0, _, _, _ = mxray(mx, ["-q", "-j0", "--json", jf, cap])
        for name, queue in (("restart", []), ("restart, 1 MiB queue", ["--redis-queue", "1"])):
            key = "b" + str(len(queue))
            c = srv.client()

            def down(p, c=c, key=key):
                wait_stable(c, key)
                try:
                    c.cmd("SHUTDOWN", "SAVE")
                except (ConnectionError, OSError, RedisError):
                    pass
                srv.proc.wait(10)

            def up(p):
                time.sleep(1.0)  # mxray reads the middle part while the server is gone
                srv.start()

            st, err = feed(mx, ["-j0", "--json", jf, "--redis", url, "--redis-key", key] + queue, cap, [down, up])
            want = lines(jf)
            red = summary_of(want)["redis"]
            c = srv.client()
            got = c.stream(key)
            c.close()
            print(f"  {name}: {len(want)} records, {red}", flush=True)
            check(red["reconnects"] >= 1, f"{name}: no reconnect counted")
            compare_with_drops(got, want, red, name)
            if red["dropped"]:
                check(st == 1 and "were not delivered" in err, f"{name}: exit {st} with drops, stderr {err[-300:]}")
            else:
                check(st == st0, f"{name}: exit {st}, without --redis {st0}")
                check(got[-1] == want[-1], f"{name}: the summary is stored last")
            if not queue:
                check(red["dropped"] == 0, f"{name}: the default queue drops nothing")
            else:
                check(red["dropped"] > 0, f"{name}: a 1 MiB queue is meant to overflow here")
    finally:
        srv.stop()


def silent_server(kind):
    """A port that never answers: 'accept' (accepts, never reads), 'backlog' (a full
    backlog: connecting never completes) or 'closed' (nobody listens). Returns (port, stop)."""
    port = free_port()
    if kind == "closed":
        return port, lambda: None
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    held, done = [], threading.Event()
    if kind == "accept":
        ls.listen(16)

        def loop():
            ls.settimeout(0.2)
            while not done.is_set():
                try:
                    held.append(ls.accept()[0])
                except OSError:
                    pass
        threading.Thread(target=loop, daemon=True).start()
    else:
        ls.listen(0)
        for _ in range(4):  # fill the accept queue; later SYNs are dropped
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            held.append(s)
        time.sleep(0.2)

    def stop():
        done.set()
        for s in held:
            s.close()
        ls.close()
    return port, stop


def part_c(mx, tmp):
    demo = os.path.join(ROOT, "pcaps", "demo.pcapng")
    jf = os.path.join(tmp, "c.json")
    for kind in ("accept", "backlog", "closed"):
        port, stop = silent_server(kind)
        try:
            args = ["-j0", "--json", jf, "--redis", f"redis://127.0.0.1:{port}", demo]
            if kind == "closed":
                args = ["-q"] + args  # the closing line is no warning: -q keeps it
            try:
                st, _, err, t = mxray(mx, args, timeout=60)
            except subprocess.TimeoutExpired:
                check(False, f"never answers ({kind}): mxray still runs after 60 s")
                continue
            want = lines(jf)
            red = summary_of(want)["redis"]
            print(f"  never answers ({kind}): {t:.1f} s, {red}", flush=True)
            check(t < 30, f"never answers ({kind}): {t:.1f} s")
            check(st == 1, f"never answers ({kind}): exit {st}")
            check(f"{len(want)} of {len(want)} records were not delivered" in err,
                  f"never answers ({kind}): stderr {err.strip()[-300:]}")
            check(red["sent"] == 0 and red["dropped"] == len(want) - 1, f"never answers ({kind}): {red}")
            check(json.loads(want[-1])["exit_status"] == 1, f"never answers ({kind}): the summary's exit_status")
            if kind == "closed":
                check(err.count("\n") == 2, f"-q: only the closing lines: {err!r}")
        finally:
            stop()


def part_d(mx):
    demo = os.path.join(ROOT, "pcaps", "demo.pcapng")
    for arg in [b"", b"a" * 65, b"lab\x01", b"lab\x7f", b"lab\xff", "lab\u202e".encode(), "lab\u0085".encode()]:
        p = subprocess.run([mx.encode(), b"--sensor", arg, demo.encode()], capture_output=True)
        check(p.returncode == 2, f"--sensor {arg!r}: exit {p.returncode}")
    for bad in ["http://x", "redis://", "redis://:pa55word@", "redis://h:0", "redis://h:70000", "redis://h/x",
                "redis://[::1", "rediss://h", "unix:", "redis://:pa55word@h:1/2/3"]:
        p = subprocess.run([mx, "--redis", bad, demo], capture_output=True)
        err = p.stderr.decode()
        check(p.returncode == 2 and "pa55word" not in err, f"--redis {bad}: exit {p.returncode}, {err.strip()}")
    for companion in (["--redis-key", "k"], ["--redis-list"], ["--redis-maxlen", "5"], ["--redis-queue", "2"]):
        p = subprocess.run([mx] + companion + [demo], capture_output=True)
        check(p.returncode == 2 and b"goes with --redis" in p.stderr, f"{companion[0]} without --redis: exit {p.returncode}")
    for bad in (["--redis-queue", "0"], ["--redis-queue", "65537"], ["--redis-maxlen", "-1"], ["--redis-key", ""]):
        p = subprocess.run([mx, "--redis", "redis://127.0.0.1:1"] + bad + [demo], capture_output=True)
        check(p.returncode == 2, f"{' '.join(bad)}: exit {p.returncode}")
    p = subprocess.run([mx, "-q", "--sensor", "x" * 64, "--json", "-", demo], capture_output=True)
    check(p.returncode in (0, 3) and p.stdout.startswith(b'{"type":"flow_start","sensor":"' + b"x" * 64),
          "--sensor of 64 bytes")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    mx = os.path.abspath(sys.argv[1])
    if not REDIS:
        print("SKIP: redis-server is not installed (scripts/setup.sh installs it)")
        sys.exit(77)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        part_d(mx)
        srv = Server(tmp, "main")
        srv.start()
        try:
            part_a(mx, tmp, srv)
        finally:
            srv.stop()
        print(f"redis: streams and lists: {time.time() - t0:.1f} s", flush=True)
        part_auth(mx, tmp)
        cap = os.path.join(tmp, "many.pcap")
        inputs = [f for d in ("smtp", "imap", "pop3") for f in sorted(glob.glob(os.path.join(ROOT, "pcaps", d, "*.pcap")))]
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "pcap-multiply.py"), "-o", cap, "--copies", "12",
                        "--spacing", "0.2"] + inputs, check=True)
        part_b(mx, tmp, cap)
        print(f"redis: restarts: {time.time() - t0:.1f} s", flush=True)
        part_c(mx, tmp)
    print(f"redis: {'FAIL' if failures else 'ok'}, {len(failures)} failures, {time.time() - t0:.1f} s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
