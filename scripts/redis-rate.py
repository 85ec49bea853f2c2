#!/usr/bin/env python3
"""redis-rate - records per second into Redis on loopback, beside the --json file rate.

usage: scripts/redis-rate.py [--mxray PATH] [--capture FILE] [--copies K] [--runs N] [--workers J]

Builds a capture from pcaps/ with scripts/pcap-multiply.py (K copies of the
SMTP, POP3 and IMAP captures; default 80: about 130,000 records) unless
--capture names one, starts a redis-server of its own on a free loopback port
(no persistence), and runs mxray -jJ (default 0) N times (default 5) each
with --json FILE, with --redis URL, and with both, then prints the median
wall time and records per second of each. Every --redis run must deliver
every record (the summary's redis.dropped is 0) and empty the stream first.
Not a test: numbers for the notes.
"""
import argparse, glob, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True, text=True,
                          check=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mxray", default=os.path.join(ROOT, "build", "mxray"))
    ap.add_argument("--capture")
    ap.add_argument("--copies", type=int, default=80)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", default="0")
    a = ap.parse_args()
    server = shutil.which("redis-server")
    if not server or not shutil.which("redis-cli"):
        sys.exit("redis-rate: redis-server and redis-cli are needed (scripts/setup.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        cap = a.capture
        if not cap:
            cap = os.path.join(tmp, "many.pcap")
            inputs = [f for d in ("smtp", "imap", "pop3") for f in sorted(glob.glob(os.path.join(ROOT, "pcaps", d, "*.pcap")))]
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "pcap-multiply.py"), "-o", cap, "--copies",
                            str(a.copies), "--spacing", "0.2"] + inputs, check=True)
        port = free_port()
        proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    if cli(port, "PING") == "PONG":
                        break
                except subprocess.CalledProcessError:
                    pass
                time.sleep(0.05)
            url = f"redis://127.0.0.1:{port}"
            jf = os.path.join(tmp, "out.json")
            modes = {"--json FILE": ["--json", jf], "--redis": ["--redis", url, "--redis-maxlen", "0"],
                     "--json FILE --redis": ["--json", jf, "--redis", url, "--redis-maxlen", "0"]}
            times = {m: [] for m in modes}
            records = None
            for _ in range(a.runs):
                for m, args in modes.items():
                    cli(port, "DEL", "mxray")
                    t = time.perf_counter()
                    p = subprocess.run([a.mxray, "-q", "-j" + a.workers] + args + [cap], capture_output=True)
                    times[m].append(time.perf_counter() - t)
                    if p.returncode not in (0, 3):
                        sys.exit(f"redis-rate: mxray {m}: exit {p.returncode}: {p.stderr.decode()}")
                    if "--redis" in args:
                        n = int(cli(port, "XLEN", "mxray"))
                        if records is not None and n != records:
                            sys.exit(f"redis-rate: {m}: {n} records stored, {records} expected")
                        records = n
                    if "--json" in args:
                        with open(jf, "rb") as f:
                            last = f.read().rsplit(b"\n", 2)[-2]
                        red = json.loads(last).get("redis")
                        if red and red["dropped"]:
                            sys.exit(f"redis-rate: {m}: {red['dropped']} records dropped")
            print(f"{os.path.basename(cap)}: {records} records, mxray -j{a.workers}, medians of {a.runs} runs")
            for m in modes:
                med = statistics.median(times[m])
                print(f"  {m:22s} {med:7.3f} s  {records / med:10,.0f} records/s")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
