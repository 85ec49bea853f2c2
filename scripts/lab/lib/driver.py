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
    (re.compile(r"(250 2\.0\.0 <[^>]*>) [0-9A-Za-z+/]{22}(:R\d+)? Saved"), r"\1 <LMTP-ID>\2 Saved"),
]


def scenario(name, summary, capture_ext="pcap", path=None, notls=False, seed=False,
             expect_malformed=None, services=(), strict=False, dovecot_tls=True,
             capture_filter="tcp", veth=False, bulk=None, size_limit=None, proxy=False,
             lmtp=False, tls_variant=None, relay2=False, postfix_extra=None,
             capture_buffer_kib=None):
    """Register a scenario.  name is "proto/slug"; the capture goes to
    pcaps/proto/slug.pcap unless path (relative to pcaps/) is given.
    Server variants (see labenv.Lab and docs/lab.md): notls starts the
    certificate-less postfix on 2525; services names extra postfix
    listeners from labenv.EXTRA_SERVICES; strict hardens submission and
    dovecot (the clean captures); dovecot_tls=False runs dovecot without
    TLS.  capture_filter is tcpdump's filter.  veth: the scenario runs
    twice on the offload path (labenv.VETH_*), offloads off and on; bulk
    ("client" or "server") is the side that sends the most, whose host's
    capture is the sender-side one (see run()).  size_limit: postfix's
    message_size_limit instead of labenv.SIZE_LIMIT.  proxy puts HAProxy in front
    of postfix and dovecot (labenv.PROXY_FRONTENDS).  lmtp starts dovecot's
    LMTP on port 24 (with a quota) and has postfix deliver there (labenv.LMTP_*).  tls_variant: the
    servers' TLS settings of the keylog/ scenarios (labenv.Lab).  relay2: a
    second postfix that the first relays to (labenv.RELAY2_*, the journey).
    postfix_extra: main.cf lines and virtual mailboxes of the main postfix
    (the bounce/ scenarios, labenv.Lab).  capture_buffer_kib: tcpdump's
    kernel buffer (-B) for a scenario whose bursts overflow the default
    (bench/content's megabytes on lo)."""
    def reg(fn):
        SCENARIOS[name] = (fn, summary, {"ext": capture_ext, "path": path, "notls": notls, "seed": seed,
                                 "expect_malformed": expect_malformed,
                                 "services": tuple(services), "strict": strict,
                                 "dovecot_tls": dovecot_tls,
                                 "capture_filter": capture_filter,
                                 "veth": veth, "bulk": bulk, "size_limit": size_limit,
                                 "proxy": proxy, "lmtp": lmtp,
                                 "tls_variant": tls_variant, "relay2": relay2,
                                 "postfix_extra": postfix_extra,
                                 "capture_buffer_kib": capture_buffer_kib})
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
        self.lmtp = []      # LMTP transactions and per-recipient outcomes (scen_lmtp.py)
        self.journeys = []  # each message's hops, from the maillogs (scen_journey.py)
        self.bounce = None  # what postfix's log says of a bounce (scen_bounce.py)

    # sessions
    # (host=, source=, tlsctx=: see client.Session)
    def _session(self, proto, port, implicit_tls, note, kw):
        """A client.Session; on the offload path it connects from the client
        namespace to the server's veth address."""
        if self.lab.veth:
            kw.setdefault("host", labenv.VETH_SERVER)
        with self.lab.in_client_ns():
            return client.Session(self, proto, port, implicit_tls, note, **kw)

    def smtp(self, port=25, implicit_tls=False, note="", **kw):
        return self._session("smtp", port, implicit_tls, note, kw)

    def pop3(self, port=110, implicit_tls=False, note="", **kw):
        return self._session("pop3", port, implicit_tls, note, kw)

    def imap(self, port=143, implicit_tls=False, note="", **kw):
        return self._session("imap", port, implicit_tls, note, kw)

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

    def expect_headers(self, name, expected):
        """What a reader shows of message NAME's header texts (messages.py
        gives it with the message): messages[].expect_headers in the truth
        file, checked by tests/oracle/truth_message.py."""
        fn = name if name.endswith(".eml") else name + ".eml"
        for m in self.messages:
            if m["file"] == fn:
                m["expect_headers"] = expected

    def sendmail(self, data, sender, rcpts, note=""):
        """Hand a message to the lab postfix's own sendmail(1) on the server
        itself (postdrop, then pickup): no network, so nothing of it is in
        the capture until a client fetches it."""
        argv = ["sendmail", "-C", self.lab.pcdir, "-i", "-f", sender, "--"] + list(rcpts)
        r = subprocess.run(argv, input=data.replace(b"\r\n", b"\n"), capture_output=True,
                           timeout=30)
        if r.returncode != 0:
            raise RuntimeError("sendmail failed: %s" % r.stderr.decode("utf-8", "replace"))
        self.note("%s: %s" % (note or "sendmail", " ".join(argv[:1] + argv[3:])))
        h = hashlib.sha256(data).hexdigest()
        for m in self.messages:
            if m["sha256"] == h:
                m.setdefault("sent_in", [])     # on no session: not in the capture as sent

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
    """Record scenario name into pcaps/.  A veth scenario is recorded twice
    on the offload path: offloads off, captured on the server's host
    (SLUG.pcap, the twin); then offloads on, captured on both hosts at once:
    SLUG-sender.pcap on the host that sends the bulk (the super-frames GSO
    and TSO leave) and SLUG-receiver.pcap on the other (the ones GRO makes).
    Both of the second run share one .d/ (SLUG-receiver.d is a symlink)."""
    opt = SCENARIOS[name][2]
    if not opt["veth"]:
        return _run(name, None, [("", "lo", None)], pcaps, workdir, certdir, exim_bin)
    client_side, server_side = ("mxc", "client"), ("mxs", None)
    sender, receiver = ((client_side, server_side) if opt["bulk"] == "client"
                        else (server_side, client_side))
    _run(name, "off", [("", ) + server_side], pcaps, workdir + "-off", certdir, exim_bin)
    # and the wire between them: the router's interface toward the receiver,
    # counted (labenv.frame_sizes) and not kept
    wire = ("mxr2", "router") if opt["bulk"] == "client" else ("mxr1", "router")
    _run(name, "on", [("-sender", ) + sender, ("-receiver", ) + receiver, ("-wire", ) + wire],
         pcaps, workdir + "-on", certdir, exim_bin)


def _run(name, veth, outputs, pcaps, workdir, certdir, exim_bin):
    """One run of scenario name; outputs: [(suffix of the capture's name,
    interface, namespace)], a tcpdump each, all at once."""
    fn, summary, opt = SCENARIOS[name]
    proto, slug = name.split("/", 1)
    rel0 = opt["path"] or os.path.join(proto, "%s.%s" % (slug, opt["ext"]))
    caps = [re.sub(r"(\.pcap(ng)?)$", suffix + r"\1", os.path.join(pcaps, rel0))
            for suffix, _, _ in outputs]
    bases = [re.sub(r"\.pcap(ng)?$", "", cap) for cap in caps]
    outdir = bases[0] + ".d"
    os.makedirs(os.path.dirname(caps[0]), exist_ok=True)
    for b in bases:
        if os.path.islink(b + ".d"):
            os.unlink(b + ".d")
        elif os.path.isdir(b + ".d"):
            shutil.rmtree(b + ".d")
    certs = labenv.ensure_certs(certdir)
    lab = labenv.Lab(workdir, certs, notls=opt["notls"], services=opt["services"],
                     strict=opt["strict"], dovecot_tls=opt["dovecot_tls"],
                     exim_bin=exim_bin, veth=veth,
                     size_limit=opt["size_limit"] or labenv.SIZE_LIMIT,
                     proxy=opt["proxy"], lmtp=opt["lmtp"],
                     tls_variant=opt["tls_variant"], relay2=opt["relay2"],
                     postfix_extra=opt["postfix_extra"])

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    ctx = Ctx(lab, name, summary, outdir, certs["ca_crt"])
    raws = [os.path.join(workdir, "raw%s.pcap" % suffix) for suffix, _, _ in outputs]
    t0 = time.time()
    try:
        lab.setup_network()
        lab.write_configs()
        lab.start_servers()
        t_up = time.time() - t0
        if opt["seed"]:
            ctx.seed("alice", STANDARD_MAILBOX() if opt["seed"] is True else opt["seed"]())
        # MXLAB_LIVE=path/to/mxray: mxray captures the scenario live too,
        # beside tcpdump (tests/live.sh); records in <capture>.live.json.
        live = os.environ.get("MXLAB_LIVE")
        if live and not veth:
            lab.start_live(live, bases[0] + ".live.json", opt["capture_filter"])
        for raw, (suffix, iface, ns) in zip(raws, outputs):
            lab.start_capture(raw, opt["capture_filter"], iface, ns, "tcpdump" + suffix,
                              buffer_kib=opt["capture_buffer_kib"])
        try:
            fn(ctx)
        except Exception:
            # leave what was seen for debugging
            with open(os.path.join(workdir, "failed-sessions.json"), "w") as f:
                json.dump(ctx.sessions, f, indent=1)
            sys.stderr.write("sessions so far: %s\n" % os.path.join(workdir, "failed-sessions.json"))
            raise
        log = lab.stop_capture()
        for m in re.finditer(r"(\d+) packets? dropped by kernel", log):
            if int(m.group(1)) != 0:
                raise RuntimeError("tcpdump dropped packets: " + log)
        delivered = collect_delivered(ctx)
    finally:
        t_stop = time.time()
        lab.stop()
        t_stop = time.time() - t_stop
    sizes = {}
    if veth:
        sizes = {suffix.lstrip("-") or "twin": labenv.frame_sizes(raw)
                 for raw, (suffix, _, _) in zip(raws, outputs)}
        if outputs[-1][0] == "-wire":
            outputs, caps, bases, raws = outputs[:-1], caps[:-1], bases[:-1], raws[:-1]
    for raw, cap in zip(raws, caps):
        if veth:
            # as the kernel gave it: checksums the card (here: nobody) was
            # to fill in stay unfinished, as in a user's capture
            shutil.copyfile(raw, cap)
            continue
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
    for i, (cap, base, (suffix, iface, ns)) in enumerate(zip(caps, bases, outputs)):
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
        if ctx.lmtp:
            truth["lmtp"] = ctx.lmtp
        if ctx.journeys:
            truth["journeys"] = ctx.journeys
        if ctx.bounce:
            truth["bounce"] = ctx.bounce
        if veth:
            truth["offload"] = {
                "mode": veth, "side": suffix.lstrip("-") or None,
                "host": ns or "server", "interface": iface,
                "twin": os.path.basename(rel0), "ethtool": lab.offloads,
                "frames": sizes}
        with open(base + ".truth.json", "w", encoding="utf-8") as f:
            json.dump(truth, f, indent=1, ensure_ascii=False)
            f.write("\n")
        if i and os.path.isdir(outdir):
            os.symlink(os.path.basename(outdir), base + ".d")
        print("%-44s %7d bytes  %4.1fs (up %.1fs, down %.1fs)"
              % (os.path.relpath(cap, pcaps), os.path.getsize(cap), time.time() - t0, t_up, t_stop))
