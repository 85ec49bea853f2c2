"""Runs one scenario: lab up, capture, client, capture down, truth written.

A scenario is a function registered with @scenario(name, summary).  It gets
a Ctx and drives clients through it; the Ctx records sessions, messages sent
and what postfix delivered, and writes NAME.truth.json next to the capture.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import client
import labenv
import messages

SCENARIOS = {}      # name -> (function, summary, options)
ORDER = []

TRUTH_FORMAT = "mxray-lab-truth/1"


def STANDARD_MAILBOX():
    """alice's mailbox for POP3/IMAP scenarios: (file name, bytes)."""
    return [("seed1.eml", messages.simple(msgid="seed.1@client.lab.test",
                                          subject="First seeded message")),
            ("seed2.eml", messages.dotted()),
            ("seed3.eml", messages.attach())]

# Values that differ between runs, replaced in "norm" (see docs/lab.md).
NORMALISERS = [
    (re.compile(r"queued as [0-9A-Za-z]+"), "queued as <QUEUEID>"),
    (re.compile(r"UIDVALIDITY \d+"), "UIDVALIDITY <UIDVALIDITY>"),
    (re.compile(r"APPENDUID \d+ "), "APPENDUID <UIDVALIDITY> "),
    (re.compile(r" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)"), " (<TIMING>)"),
    (re.compile(r"<\d+\.\d+\.\d+\.[0-9a-f]+@mx\.lab\.test>"), "<APOP-TIMESTAMP>"),
    (re.compile(r"^(\+OK [^\r\n]*)<[^>]*@mx\.lab\.test>", re.M), r"\1<APOP-TIMESTAMP>"),
]


def scenario(name, summary, capture_ext="pcap", path=None, notls=False, seed=False,
             expect_malformed=None, services=(), strict=False, dovecot_tls=True,
             capture_filter="tcp", proxy=False):
    """Register a scenario.  name is "proto/slug"; the capture goes to
    pcaps/proto/slug.pcap unless path (relative to pcaps/) is given.
    Server variants (see labenv.Lab and docs/lab.md): notls starts the
    certificate-less postfix on 2525; services names extra postfix
    listeners from labenv.EXTRA_SERVICES; strict hardens submission and
    dovecot (the clean captures); dovecot_tls=False runs dovecot without
    TLS.  capture_filter is tcpdump's filter.  proxy puts HAProxy in front
    of postfix and dovecot (labenv.PROXY_FRONTENDS)."""
    def reg(fn):
        SCENARIOS[name] = (fn, summary, {"ext": capture_ext, "path": path, "notls": notls, "seed": seed,
                                 "expect_malformed": expect_malformed,
                                 "services": tuple(services), "strict": strict,
                                 "dovecot_tls": dovecot_tls,
                                 "capture_filter": capture_filter, "proxy": proxy})
        ORDER.append(name)
        return fn
    return reg


class Ctx:
    def __init__(self, lab, name, summary, outdir, cafile):
        self.lab = lab
        self.name = name
        self.summary = summary
        self.outdir = outdir            # pcaps/<proto>/<slug>.d
        self.sessions = []
        self.messages = []
        self.cafile = cafile
        self.tlsctx = client.tls_context(cafile)
        self.notes = []
        self.seeded = {}

    # sessions
    # (host=, source=, tlsctx=: see client.Session)
    def smtp(self, port=25, implicit_tls=False, note="", **kw):
        s = client.Session(self, "smtp", port, implicit_tls, note, **kw)
        return s

    def pop3(self, port=110, implicit_tls=False, note="", **kw):
        return client.Session(self, "pop3", port, implicit_tls, note, **kw)

    def imap(self, port=143, implicit_tls=False, note="", **kw):
        return client.Session(self, "imap", port, implicit_tls, note, **kw)

    def swaks(self, args, note="", port=25, implicit_tls=False, data=None,
              server=client.HOST):
        """Run swaks; data is the name of a message recorded with message().
        swaks ends the data itself with CRLF.CRLF, so it gets a copy
        without the final CRLF and sends the message's exact bytes."""
        if data is not None:
            src = os.path.join(self.outdir, data)
            with open(src, "rb") as f:
                body = f.read()
            tmp = os.path.join(self.lab.dir, "swaks-" + data)
            with open(tmp, "wb") as f:
                f.write(body[:-2] if body.endswith(b"\r\n") else body)
            args = args + ["--data", tmp]
        r = client.run_swaks(self, args, note, port, implicit_tls, server)
        if data is not None:
            info = self.sessions[-1]
            self.sent_in(body, info, info["tls"] != "none")
        return r

    def sent_in(self, data, info, tls):
        """Note which session carried a recorded message, and whether in TLS
        (messages[].sent_in in the truth file)."""
        h = hashlib.sha256(data).hexdigest()
        idx = next(i for i, x in enumerate(self.sessions) if x is info)
        for m in self.messages:
            if m["sha256"] == h:
                m.setdefault("sent_in", []).append({"session": idx, "tls": bool(tls)})

    # messages
    def message(self, name, data):
        """Record a message the scenario sends; writes it to NAME.d/."""
        os.makedirs(self.outdir, exist_ok=True)
        fn = name if name.endswith(".eml") else name + ".eml"
        with open(os.path.join(self.outdir, fn), "wb") as f:
            f.write(data)
        if not any(m["file"] == fn for m in self.messages):
            self.messages.append({
                "file": fn, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "attachments": messages.attachments_of(data)})
        return data

    def seed(self, user, msgs):
        """Seed user's mailbox with (name, bytes) messages before capture."""
        self.lab.seed_mailbox(user, [d for _, d in msgs])
        self.seeded[user] = [self.message(n, d) and n for n, d in msgs]

    def note(self, text):
        self.notes.append(text)


def _normalise(text):
    out = text
    for rx, rep in NORMALISERS:
        out = rx.sub(rep, out)
    return out


def strip_trace(data):
    """The delivered message as it was sent: drop the header lines the
    server prepended on delivery (Return-Path, X-Original-To, Delivered-To,
    Received with continuations) and turn postfix's LF line ends back into
    CRLF."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    i = 0
    while i < len(lines):
        low = lines[i].lower()
        if low.startswith((b"return-path:", b"x-original-to:", b"delivered-to:",
                           b"received:")):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
            continue
        break
    return b"\r\n".join(lines[i:])


def collect_delivered(ctx):
    """Copy every message postfix delivered into NAME.d/delivered/USER/N.eml."""
    out = []
    for user in labenv.USERS:
        files = []
        for sub in ("new", "cur"):
            d = os.path.join(ctx.lab.maildir, user, "Maildir", sub)
            if os.path.isdir(d):
                for f in os.listdir(d):
                    if f.startswith("1700000000."):     # seeded by us
                        continue
                    files.append(os.path.join(d, f))
        files.sort(key=lambda p: (os.stat(p).st_mtime_ns, p))
        for i, p in enumerate(files, 1):
            with open(p, "rb") as f:
                data = f.read()
            rel = os.path.join("delivered", user, "%d.eml" % i)
            dst = os.path.join(ctx.outdir, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(data)
            body = strip_trace(data)
            e = {"user": user, "file": rel, "size": len(data),
                 "sha256_without_trace": hashlib.sha256(body).hexdigest()}
            for m in ctx.messages:
                if m["sha256"] == e["sha256_without_trace"]:
                    e["same_as_sent"] = m["file"]
            out.append(e)
    return out


def fix_checksums(raw, out):
    """Recompute IP/TCP checksums (the kernel leaves them partial on lo)."""
    r = subprocess.run(["tcprewrite", "--fixcsum", "-i", raw, "-o", out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("tcprewrite failed: " + r.stderr)


def run(name, pcaps, workdir, certdir, exim_bin=None):
    fn, summary, opt = SCENARIOS[name]
    proto, slug = name.split("/", 1)
    rel = opt["path"] or os.path.join(proto, "%s.%s" % (slug, opt["ext"]))
    cap = os.path.join(pcaps, rel)
    base = re.sub(r"\.pcap(ng)?$", "", cap)
    outdir = base + ".d"
    truthf = base + ".truth.json"
    os.makedirs(os.path.dirname(cap), exist_ok=True)
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    certs = labenv.ensure_certs(certdir)
    lab = labenv.Lab(workdir, certs, notls=opt["notls"], services=opt["services"],
                     strict=opt["strict"], dovecot_tls=opt["dovecot_tls"],
                     exim_bin=exim_bin, proxy=opt["proxy"])

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    ctx = Ctx(lab, name, summary, outdir, certs["ca_crt"])
    raw = os.path.join(workdir, "raw.pcap")
    t0 = time.time()
    try:
        lab.setup_network()
        lab.write_configs()
        lab.start_servers()
        t_up = time.time() - t0
        if opt["seed"]:
            ctx.seed("alice", STANDARD_MAILBOX())
        # MXLAB_LIVE=path/to/mxray: mxray captures the scenario live too,
        # beside tcpdump (tests/live.sh); records in <capture>.live.json.
        live = os.environ.get("MXLAB_LIVE")
        if live:
            lab.start_live(live, base + ".live.json", opt["capture_filter"])
        lab.start_capture(raw, opt["capture_filter"])
        try:
            fn(ctx)
        except Exception:
            # leave what was seen for debugging
            with open(os.path.join(workdir, "failed-sessions.json"), "w") as f:
                json.dump(ctx.sessions, f, indent=1)
            sys.stderr.write("sessions so far: %s\n" % os.path.join(workdir, "failed-sessions.json"))
            raise
        log = lab.stop_capture()
        m = re.search(r"(\d+) packets? dropped by kernel", log)
        if m and int(m.group(1)) != 0:
            raise RuntimeError("tcpdump dropped packets: " + log)
        delivered = collect_delivered(ctx)
    finally:
        t_stop = time.time()
        lab.stop()
        t_stop = time.time() - t_stop
    tmp = raw + ".fixed"
    fix_checksums(raw, tmp)
    if cap.endswith(".pcapng"):
        subprocess.run(["editcap", "-F", "pcapng", tmp, cap], check=True)
    else:
        shutil.copyfile(tmp, cap)
    for s in ctx.sessions:
        for e in s["transcript"]:
            if "text" in e and "norm" not in e:
                n = _normalise(e["text"])
                if n != e["text"]:
                    e["norm"] = n
    truth = {
        "format": TRUTH_FORMAT,
        "scenario": name,
        "summary": summary,
        "capture": os.path.basename(cap),
        "notes": ctx.notes,
        "expect_malformed": opt["expect_malformed"],
        "sessions": [dict({"index": i}, **s) for i, s in enumerate(ctx.sessions)],
        "messages": ctx.messages,
        "seeded": ctx.seeded,
        "delivered": delivered,
    }
    with open(truthf, "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("%-44s %7d bytes  %4.1fs (up %.1fs, down %.1fs)"
          % (rel, os.path.getsize(cap), time.time() - t0, t_up, t_stop))
