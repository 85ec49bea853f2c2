"""Lab environment: private postfix + dovecot + tcpdump inside a network namespace.

Everything lives under one work directory.  Nothing here touches /etc/postfix
or /etc/dovecot: postfix runs as `postfix -c DIR`, dovecot as `dovecot -c FILE`.
Every process started is remembered by PID and ended by PID in stop().
"""
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

HOSTNAME = "mx.lab.test"
DOMAIN = "lab.test"
MAIL_UID = 8          # Debian's "mail" user owns the Maildirs
MAIL_GID = 8

# Users: name -> password.  Fixed so every run is the same.
USERS = {
    "alice": "alicepw",
    "bob": "bobpw",
    "carol": "carolpw",
    "dave": "davepw",
}

# Recipient access table: a temporary failure and an explicit reject.
RECIPIENT_ACCESS = """\
busy@lab.test 450 4.2.1 Mailbox busy, try again later
toofast@lab.test 450 4.2.1 The user you are trying to contact is receiving mail too quickly. Please resend your message at a later time.
greylist@lab.test 450 4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/lab.test.html
puzzle@lab.test 521 5.2.1 MUST COMPLETE IMAGE PUZZLE BEFORE SENDING
"""
SENDER_ACCESS = """\
spammer@blocked.example REJECT Sender address blocked by lab policy
"""
SIZE_LIMIT = 20000

# LMTP (scenarios with lmtp=True, RFC 2033): dovecot-lmtpd on LMTP_PORT with
# the quota plugin, and postfix delivering its virtual mail there.  Users are
# then a passwd-file userdb, so that an unknown one is refused at RCPT; the
# user in LMTP_QUOTA_USER has a quota smaller than any message, and since
# lmtp_rcpt_check_quota = no, dovecot refuses it only after the data, in that
# recipient's own reply (RFC 2033 §4.2).
LMTP_PORT = 24
LMTP_QUOTA_USER = "dave"
LMTP_QUOTA = "1K"

# A message's journey (scenarios with relay2=True, issue 27): the lab's
# postfix takes submissions (587, AUTH) and relays everything for DOMAIN to
# a second postfix instance, RELAY2_HOST on RELAY2_ADDR:25 (own config,
# queue and maillog), which delivers to dovecot over LMTP.  Both log the
# client's port (smtpd_client_port_logging), so that the truth file can name
# each hop's connection from the maillogs.
RELAY2_ADDR = "127.0.0.2"
RELAY2_HOST = "mx2.lab.test"

# The offload path (scenarios with @scenario(veth=True), issue 25): three
# network namespaces joined by two veth pairs, as a client host, a wire and a
# server host.  The lab's own namespace holds the servers (VETH_SERVER on
# mxs); a router namespace forwards between mxr1 (toward the client) and mxr2
# (toward the server) with every offload off, so that what crosses it is cut
# into segments of at most the MTU as on a real wire; the client namespace
# holds the client (VETH_CLIENT on mxc).  With offloads "on" the two hosts'
# interfaces have TSO, GSO and GRO on (veth has GRO only with NAPI, which
# `ethtool -K ... gro on` enables since Linux 5.13): tcpdump on the sending
# host sees the super-frames before segmentation, on the receiving host the
# ones GRO made of the wire's segments.  With "off" every offload is off.
VETH_CLIENT = "10.25.1.2"
VETH_ROUTER_C = "10.25.1.1"
VETH_ROUTER_S = "10.25.2.1"
VETH_SERVER = "10.25.2.2"
VETH_MTU = 1500
OFFLOADS = ("tso", "gso", "gro", "tx", "rx", "sg")     # every one ethtool -K names
CLONE_NEWNET = 0x40000000

# Extra listeners of the lab's postfix, started only for the scenarios that
# name them (@scenario(services=...)); each is a real postfix smtpd with
# settings a real site may have, on its standard port but its own loopback
# address, so that each looks like a server of its own.
# name -> (address, port, master.cf entry, main.cf lines for the instance).
EXTRA_SERVICES = {
    # Submission without STARTTLS; SASL AUTH (PLAIN, LOGIN) offered in clear.
    "no-starttls": ("127.0.0.26", 587, """\
127.0.0.26:587 inet  n  -  n  -  -  smtpd
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=no
  -o smtpd_sasl_mechanism_filter=plain,login
""", ""),
    # An open relay: every client address is in mynetworks, so
    # permit_mynetworks lets anyone relay without AUTH.  Mail to other
    # domains goes to the smtp transport (with the lab's error: transport
    # smtpd would refuse such recipients at RCPT), and that transport is
    # deferred: relayed mail stays in the queue, nothing is tried, not even
    # DNS (and the namespace has no network anyway).
    "open-relay": ("127.0.0.27", 25, """\
127.0.0.27:25 inet  n  -  n  -  -  smtpd
  -o mynetworks=0.0.0.0/0
""", "default_transport = smtp\nrelay_transport = smtp\ndefer_transports = smtp\n"),
    # STARTTLS that still accepts TLS 1.0 and 1.1: protocols >=TLSv1 and
    # OpenSSL security level 0 (OpenSSL 3 refuses TLS < 1.2 at level 1 and
    # above).
    "tls10": ("127.0.0.28", 25, """\
127.0.0.28:25 inet  n  -  n  -  -  smtpd
  -o smtpd_tls_protocols=>=TLSv1
  -o smtpd_tls_ciphers=medium
  -o tls_medium_cipherlist=DEFAULT:@SECLEVEL=0
""", ""),
    # Behind HAProxy (PROXY_FRONTEND): a listener that expects a PROXY
    # protocol header, version 1 or 2, before SMTP (Postfix 3.5 and later).
    "proxy-protocol": ("127.0.0.41", 25, """\
127.0.0.41:25 inet  n  -  n  -  -  smtpd
  -o smtpd_upstream_proxy_protocol=haproxy
""", ""),
    # postscreen in front of smtpd (issue 26): a multi-line greeting whose
    # first line ("220-") is sent at once, then postscreen_greet_wait for a
    # client that talks before its turn (the pregreet test); enforce: such a
    # client goes on with postscreen's own SMTP engine, which refuses mail.
    "postscreen": ("127.0.0.32", 25, """\
127.0.0.32:25 inet  n  -  n  -  1  postscreen
  -o postscreen_greet_action=enforce
  -o postscreen_greet_banner=$smtpd_banner
  -o postscreen_greet_wait=2s
smtpd      pass  -  -  n  -  -  smtpd
dnsblog    unix  -  -  n  -  0  dnsblog
tlsproxy   unix  -  -  n  -  0  tlsproxy
""", ""),
    # A short idle timeout (issue 26): smtpd answers a silent client with an
    # unsolicited "421 4.4.2 ... Error: timeout exceeded" and closes (RFC 5321
    # §3.8); one error is the hard limit, so pipelined commands after an
    # error get "421 4.7.0 ... Error: too many errors" and no reply.
    "short-timeout": ("127.0.0.33", 25, """\
127.0.0.33:25 inet  n  -  n  -  -  smtpd
  -o smtpd_timeout=2s
  -o smtpd_hard_error_limit=1
""", ""),
    # SMTP smuggling (issue 27, scen_attacks.py).  Postfix 3.7.11 (Debian 12)
    # has the fix backported, off by default: smtpd_forbid_bare_newline = no
    # reads a line ended by a bare LF as a line, so <LF>.<LF> ends the data
    # (CVE-2023-51764), and pipelined commands after it are not refused.
    "smuggling-open": ("127.0.0.61", 25, """\
127.0.0.61:25 inet  n  -  n  -  -  smtpd
  -o smtpd_forbid_bare_newline=no
  -o smtpd_forbid_unauth_pipelining=no
""", ""),
    # ...and fixed: only <CRLF>.<CRLF> ends the data (normalize), for every
    # client (the default exclusions are $mynetworks, the lab's clients).
    "smuggling-fixed": ("127.0.0.62", 25, """\
127.0.0.62:25 inet  n  -  n  -  -  smtpd
  -o smtpd_forbid_bare_newline=normalize
  -o smtpd_forbid_bare_newline_exclusions=
""", ""),
    # The relaying lab (issue 27): two postfix smtpd on documentation
    # addresses outside 127.0.0.0/8 (RFC 5737), which setup_network puts on
    # lo, so that a client bound to RELAY_OUTSIDER (192.0.2.10) is plainly
    # another network to the auditor, and one bound to the server's own
    # address is its own host.  Both offer SASL AUTH (dovecot) in clear, so
    # the capture shows who authenticated.  Open: every client is in
    # mynetworks; relayed mail goes to the deferred smtp transport (as
    # open-relay above).  Closed: mynetworks is the host itself, so the
    # main.cf smtpd_relay_restrictions (permit_mynetworks,
    # permit_sasl_authenticated, reject_unauth_destination) refuse a
    # stranger's foreign recipient with 554 5.7.1.
    "relay-open": ("198.51.100.25", 25, """\
198.51.100.25:25 inet  n  -  n  -  -  smtpd
  -o mynetworks=0.0.0.0/0
  -o smtpd_sasl_auth_enable=yes
""", "default_transport = smtp\nrelay_transport = smtp\ndefer_transports = smtp\n"),
    "relay-closed": ("198.51.100.26", 25, """\
198.51.100.26:25 inet  n  -  n  -  -  smtpd
  -o mynetworks=127.0.0.0/8,198.51.100.26/32
  -o smtpd_sasl_auth_enable=yes
""", "default_transport = smtp\nrelay_transport = smtp\ndefer_transports = smtp\n"),
}

# The client of the relaying lab that is no server's host or network.
RELAY_OUTSIDER = "192.0.2.10"

# HAProxy in front of the lab's servers (scenarios with proxy=True): each
# frontend on PROXY_ADDR, on a port of no mail protocol, forwards to a
# listener on BACKEND_ADDR that expects the PROXY header, and connects from
# PROXY_ADDR.  name -> (frontend port, backend port, server options, TLS).
PROXY_ADDR = "127.0.0.40"
BACKEND_ADDR = "127.0.0.41"
PROXY_FRONTENDS = {
    "smtp_v1": (10025, 25, "send-proxy", False),
    "smtp_v2": (10026, 25, "send-proxy-v2 proxy-v2-options unique-id,crc32c", False),
    # TLS ends at HAProxy: the backend gets cleartext SMTP and the client's
    # TLS session in the SSL TLV (§2.2.5), its SNI as AUTHORITY.
    "smtp_tls": (10465, 25, "send-proxy-v2-ssl-cn proxy-v2-options "
                 "ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority,unique-id", True),
    "imap_v2": (10143, 143, "send-proxy-v2 proxy-v2-options unique-id", False),
    "pop3_v1": (10110, 110, "send-proxy", False),
}


def ensure_certs(certdir):
    """Make a self-signed CA and a server certificate for mx.lab.test in
    certdir (once).  Returns a dict of paths."""
    paths = {
        "ca_key": os.path.join(certdir, "ca.key"),
        "ca_crt": os.path.join(certdir, "ca.crt"),
        "key": os.path.join(certdir, "server.key"),
        "csr": os.path.join(certdir, "server.csr"),
        "crt": os.path.join(certdir, "server.crt"),
        "ext": os.path.join(certdir, "server.ext"),
    }
    paths["rsa_key"] = os.path.join(certdir, "server-rsa.key")
    paths["rsa_crt"] = os.path.join(certdir, "server-rsa.crt")
    run = lambda *a: subprocess.run(a, check=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    if os.path.exists(paths["crt"]):
        _ensure_rsa(paths, run)
        return paths
    os.makedirs(certdir, exist_ok=True)
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
        "-out", paths["ca_key"])
    run("openssl", "req", "-x509", "-new", "-key", paths["ca_key"], "-days", "3650",
        "-subj", "/O=mxray lab/CN=mxray lab CA", "-out", paths["ca_crt"])
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
        "-out", paths["key"])
    run("openssl", "req", "-new", "-key", paths["key"],
        "-subj", "/O=mxray lab/CN=" + HOSTNAME, "-out", paths["csr"])
    with open(paths["ext"], "w") as f:
        f.write("subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n" % HOSTNAME)
    run("openssl", "x509", "-req", "-in", paths["csr"], "-CA", paths["ca_crt"],
        "-CAkey", paths["ca_key"], "-CAcreateserial", "-days", "3650",
        "-extfile", paths["ext"], "-out", paths["crt"])
    os.chmod(paths["key"], 0o644)   # read by dovecot/postfix as root anyway
    _ensure_rsa(paths, run)
    return paths


def _ensure_rsa(paths, run):
    """A second server certificate, RSA 2048, for the same name and from
    the same CA (once): the keylog/ scenarios load it beside the EC one
    (tls_variant "rsa"), so that ECDHE-RSA and RSA key exchange can be
    negotiated; no other scenario uses it."""
    if os.path.exists(paths["rsa_crt"]):
        return
    csr = paths["rsa_crt"] + ".csr"
    run("openssl", "genrsa", "-out", paths["rsa_key"], "2048")
    run("openssl", "req", "-new", "-key", paths["rsa_key"],
        "-subj", "/O=mxray lab/CN=" + HOSTNAME, "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", paths["ca_crt"],
        "-CAkey", paths["ca_key"], "-CAcreateserial", "-days", "3650",
        "-extfile", paths["ext"], "-out", paths["rsa_crt"])
    os.chmod(paths["rsa_key"], 0o644)


def _alive(pid):
    """True while pid exists and is not a zombie (a daemon's reaper may be
    slow to collect it)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


def frame_sizes(path):
    """{source address: {"frames": n, "longer_than_mtu": n, "longest": bytes}}
    of a classic pcap of Ethernet/IPv4 frames (tcpdump's on veth): where the
    super-frames of an offload capture are, and how long."""
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off = 24
    while off + 16 <= len(data):
        caplen, wire = struct.unpack(order + "II", data[off + 8:off + 16])
        fr = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        if len(fr) < 34 or fr[12:14] != b"\x08\x00":
            continue
        st = out.setdefault(socket.inet_ntoa(fr[26:30]),
                            {"frames": 0, "longer_than_mtu": 0, "longest": 0})
        st["frames"] += 1
        st["longer_than_mtu"] += wire > VETH_MTU + 14
        st["longest"] = max(st["longest"], wire)
    return out


def _w(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _set_main(cdir, settings):
    """Sets main.cf parameters of the instance in cdir: each replaces the
    line that sets it (later ones dropped), or is added at the end."""
    p = os.path.join(cdir, "main.cf")
    with open(p) as f:
        lines = f.read().splitlines()
    out, done = [], set()
    for ln in lines:
        k = ln.split("=", 1)[0].strip() if "=" in ln and not ln.startswith((" ", "#")) else None
        if k in settings:
            if k not in done:
                out.append("%s = %s" % (k, settings[k]))
                done.add(k)
            continue
        out.append(ln)
    out += ["%s = %s" % (k, v) for k, v in settings.items() if k not in done]
    _w(p, "\n".join(out) + "\n")


class Lab:
    """One lab instance in one work directory (inside the current netns)."""

    def __init__(self, workdir, certs, notls=False, services=(), strict=False,
                 dovecot_tls=True, exim_bin=None, veth=None, size_limit=SIZE_LIMIT,
                 proxy=False, lmtp=False, tls_variant=None, relay2=False, postfix_extra=None):
        self.dir = os.path.abspath(workdir)
        self.certs = certs
        self.pids = {}          # name -> pid of processes we started
        self.pcdir = os.path.join(self.dir, "postfix")
        self.pcdir_notls = os.path.join(self.dir, "postfix-notls")
        self.pcdir_relay2 = os.path.join(self.dir, "postfix-relay2")
        self.relay2 = relay2    # the second postfix (RELAY2_*); implies lmtp
        lmtp = lmtp or relay2
        self.dcdir = os.path.join(self.dir, "dovecot")
        self.maildir = os.path.join(self.dir, "mail")
        self.tcpdump = None
        self.notls = notls      # also run the certificate-less smtpd on 2525
        self.services = tuple(services)     # names in EXTRA_SERVICES
        for n in self.services:
            if n not in EXTRA_SERVICES:
                raise ValueError("unknown lab service " + n)
        # strict: the hardened configuration of the clean captures: no VRFY,
        # TLS 1.2 or later only, submission needs STARTTLS before MAIL and
        # AUTH (PLAIN, LOGIN only), dovecot refuses plaintext logins without
        # TLS and offers only PLAIN, LOGIN.
        self.strict = strict
        self.dovecot_tls = dovecot_tls      # False: dovecot without TLS at all
        self.procs = {}         # name -> Popen of extra servers (exim, haproxy)
        # proxy: HAProxy in front (PROXY_FRONTENDS), postfix's
        # proxy-protocol listener and dovecot's haproxy listeners behind it.
        self.proxy = proxy
        self.lmtp = lmtp        # dovecot's LMTP on LMTP_PORT, postfix delivering there
        # tls_variant (the keylog/ scenarios): {"rsa": True} loads the RSA
        # certificate beside the EC one in postfix and dovecot; "postfix":
        # main.cf lines, "dovecot": dovecot.conf lines added last; "posture"
        # (the tls-posture/ scenarios): postfix serves that chain of
        # lib/posture.py, with "weak_ciphers" NULL and anonymous suites too.
        self.tls_variant = dict(tls_variant or {})
        # postfix_extra (the bounce/ scenarios): "main": main.cf lines of the
        # main instance, added last; "vmailbox": more lines of its virtual
        # mailbox map (addresses postfix accepts and dovecot does not know)
        self.postfix_extra = dict(postfix_extra or {})
        if proxy and "proxy-protocol" not in self.services:
            self.services += ("proxy-protocol",)
        self.exim_bin = exim_bin
        # veth: None (loopback only), "on" or "off" (the offload path above)
        self.veth = veth
        self.size_limit = size_limit
        self.ns_pids = {}       # "client", "router" -> pid holding that netns
        self.captures = []      # [(name, Popen, log file, path)] running tcpdumps
        listen = ["127.0.0.1"] + ([VETH_SERVER] if veth else [])
        self.listen = ", ".join(listen)

    # ---------------------------------------------------------------- setup
    def setup_network(self):
        """Inside a fresh namespace: lo up, MTU 1500, offloads off."""
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "link", "set", "lo", "mtu", "1500"], check=True)
        # Service addresses outside 127.0.0.0/8 (the relaying lab), and its
        # outside client's, on lo: this namespace's own, gone with it.
        extra = sorted({EXTRA_SERVICES[n][0] for n in self.services
                        if not EXTRA_SERVICES[n][0].startswith("127.")})
        for addr in extra + ([RELAY_OUTSIDER] if extra else []):
            subprocess.run(["ip", "addr", "add", addr + "/32", "dev", "lo"], check=True)
        if shutil.which("ethtool"):
            subprocess.run(["ethtool", "-K", "lo", "tso", "off", "gso", "off",
                            "gro", "off"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if self.veth:
            self._setup_veth()

    def _netns_holder(self, name):
        """A process in a new, empty network namespace (a sleep, ended by PID
        in stop()); its /proc/PID/ns/net names the namespace."""
        p = subprocess.Popen(["unshare", "--net", "--", "sleep", "3600"],
                             stdin=subprocess.DEVNULL)
        self.pids["netns:" + name] = p.pid
        self.procs["netns:" + name] = p
        self.ns_pids[name] = p.pid
        path = "/proc/%d/ns/net" % p.pid
        end = time.monotonic() + 5
        while os.readlink(path) == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > end:      # unshare has not exec'd sleep yet
                raise RuntimeError("no network namespace for " + name)
            time.sleep(0.02)
        return p.pid

    def ns_argv(self, name, argv):
        """argv run inside namespace name ("client", "router"; None: ours)."""
        if name is None:
            return list(argv)
        return ["nsenter", "--net=/proc/%d/ns/net" % self.ns_pids[name], "--"] + list(argv)

    def _ns(self, name, *argv):
        subprocess.run(self.ns_argv(name, argv), check=True, stdout=subprocess.DEVNULL)

    def _setup_veth(self):
        """The client and router namespaces, the two veth pairs, addresses,
        routes and offloads (see VETH_* above)."""
        for n in ("router", "client"):
            self._netns_holder(n)
            self._ns(n, "ip", "link", "set", "lo", "up")
        r, c = self.ns_pids["router"], self.ns_pids["client"]
        self._ns(None, "ip", "link", "add", "mxs", "type", "veth", "peer", "name", "mxr2")
        self._ns(None, "ip", "link", "set", "mxr2", "netns", str(r))
        self._ns("router", "ip", "link", "add", "mxr1", "type", "veth", "peer", "name", "mxc")
        self._ns("router", "ip", "link", "set", "mxc", "netns", str(c))
        on = "on" if self.veth == "on" else "off"
        for ns, dev, addr, gw in ((None, "mxs", VETH_SERVER, VETH_ROUTER_S),
                                  ("client", "mxc", VETH_CLIENT, VETH_ROUTER_C),
                                  ("router", "mxr1", VETH_ROUTER_C, None),
                                  ("router", "mxr2", VETH_ROUTER_S, None)):
            self._ns(ns, "ip", "link", "set", dev, "mtu", str(VETH_MTU))
            self._ns(ns, "ip", "addr", "add", addr + "/24", "dev", dev)
            # the hosts' offloads as the run asks; the router's (the wire) off
            k = []
            for o in OFFLOADS:
                k += [o, on if gw else "off"]
            self._ns(ns, "ethtool", "-K", dev, *k)
            self._ns(ns, "ip", "link", "set", dev, "up")
            if gw:
                self._ns(ns, "ip", "route", "add", "default", "via", gw)
        self._ns("router", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.offloads = {dev: self.offload_state(ns, dev)
                         for ns, dev in ((None, "mxs"), ("client", "mxc"),
                                         ("router", "mxr1"), ("router", "mxr2"))}

    def offload_state(self, ns, dev):
        """{feature: "on"/"off"} of dev as ethtool -k reports it (the truth
        file keeps it: what the kernel really had)."""
        out = subprocess.run(self.ns_argv(ns, ["ethtool", "-k", dev]), check=True,
                             capture_output=True, text=True).stdout
        names = {"tcp-segmentation-offload": "tso", "generic-segmentation-offload": "gso",
                 "generic-receive-offload": "gro", "tx-checksumming": "tx",
                 "rx-checksumming": "rx", "scatter-gather": "sg"}
        st = {}
        for ln in out.splitlines():
            k, _, v = ln.strip().partition(": ")
            if k in names:
                st[names[k]] = v.split()[0]
        return st

    @contextlib.contextmanager
    def in_client_ns(self):
        """Sockets created inside this block belong to the client namespace
        (setns(2) on this thread; back to ours at the end).  Without the
        offload path it does nothing."""
        if not self.veth:
            yield
            return
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/self/ns/net", os.O_RDONLY)
        there = os.open("/proc/%d/ns/net" % self.ns_pids["client"], os.O_RDONLY)
        try:
            if libc.setns(there, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns to the client namespace")
            try:
                yield
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(own)
            os.close(there)

    def write_configs(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        for d in (self.maildir,):
            os.makedirs(d, exist_ok=True)
            os.chown(d, MAIL_UID, MAIL_GID)
        for user in USERS:
            # Maildir skeleton so IMAP/POP3 work before the first delivery.
            for sub in ("", "/Maildir", "/Maildir/cur", "/Maildir/new", "/Maildir/tmp"):
                p = os.path.join(self.maildir, user) + sub
                os.makedirs(p, exist_ok=True)
                os.chown(p, MAIL_UID, MAIL_GID)
                os.chmod(p, 0o700)
            self.write_uidlist(user, [])
        self._write_postfix(self.pcdir, tls=True)
        self._write_postfix(self.pcdir_notls, tls=False)
        if self.relay2:
            self._write_relay2()
        self._write_dovecot()

    def _write_relay2(self):
        """The first instance relays DOMAIN to the second (RELAY2_*), one
        connection per delivery, in clear; the second is the lab's postfix
        on RELAY2_ADDR:25 only, named RELAY2_HOST, delivering over LMTP."""
        _set_main(self.pcdir, {"virtual_transport": "smtp:[%s]:25" % RELAY2_ADDR,
                               "smtp_connection_cache_on_demand": "no",
                               "smtpd_client_port_logging": "yes"})
        cdir = self.pcdir_relay2
        self._write_postfix(cdir, tls=True)
        _set_main(cdir, {"myhostname": RELAY2_HOST,
                         "virtual_transport": "lmtp:inet:127.0.0.1:%d" % LMTP_PORT,
                         "smtpd_client_port_logging": "yes"})
        mpath = os.path.join(cdir, "master.cf")
        with open(mpath) as f:
            master = f.read()
        # only smtpd on RELAY2_ADDR:25 (an address of a master.cf entry
        # need not be an interface's, as inet_interfaces' must): the
        # submission listeners belong to the first
        _w(mpath, "%s:25 inet  n  -  n  -  -  smtpd\n" % RELAY2_ADDR + master[master.index("pickup "):])

    def _write_postfix(self, cdir, tls):
        os.makedirs(cdir, exist_ok=True)
        spool = os.path.join(cdir, "spool")
        data = os.path.join(cdir, "data")
        os.makedirs(spool, exist_ok=True)
        os.makedirs(data, exist_ok=True)
        shutil.chown(data, "postfix", "postfix")
        vmaps = "".join("%s@%s %s/Maildir/\n" % (u, DOMAIN, u) for u in USERS)
        if tls:
            vmaps += self.postfix_extra.get("vmailbox", "")
        _w(os.path.join(cdir, "vmailbox"), vmaps)
        # aliases for EXPN: a list expanding to two users
        _w(os.path.join(cdir, "virtual"),
           "team@lab.test alice@lab.test, bob@lab.test\n")
        _w(os.path.join(cdir, "recipient_access"), RECIPIENT_ACCESS)
        _w(os.path.join(cdir, "sender_access"), SENDER_ACCESS)
        c = self.certs
        if tls and self.tls_variant.get("rsa"):
            # both certificates: OpenSSL picks by the cipher suite (ECDHE-RSA,
            # RSA key exchange) or the client's signature algorithms
            tls_main = (
                "smtpd_tls_cert_file = %s\n"
                "smtpd_tls_key_file = %s\n"
                "smtpd_tls_eccert_file = %s\n"
                "smtpd_tls_eckey_file = %s\n"
                "smtpd_tls_security_level = may\n"
                % (c["rsa_crt"], c["rsa_key"], c["crt"], c["key"]))
        elif tls:
            tls_main = (
                "smtpd_tls_cert_file = %s\n"
                "smtpd_tls_key_file = %s\n"
                "smtpd_tls_security_level = may\n" % (c["crt"], c["key"]))
        else:
            # TLS "enabled" but the certificate cannot be loaded: postfix
            # answers STARTTLS with 454 4.7.0 (a server without a cert).
            tls_main = (
                "smtpd_tls_cert_file = %s/missing.crt\n"
                "smtpd_tls_key_file = %s/missing.key\n"
                "smtpd_tls_security_level = may\n" % (cdir, cdir))
        main = f"""\
# mxray capture lab: private postfix instance (generated)
compatibility_level = 3.6
config_directory = {cdir}
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = {HOSTNAME}
mydomain = {DOMAIN}
myorigin = $mydomain
inet_interfaces = {self.listen}
inet_protocols = ipv4
mydestination = localhost
# No client is trusted by address: relaying needs SASL.
mynetworks = 127.0.0.254/32
smtpd_banner = $myhostname ESMTP mxray-lab
biff = no
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
# Nothing ever leaves the lab.
default_transport = error:5.7.0 no outside delivery in the lab
relay_transport = error:5.7.0 no outside delivery in the lab
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {self.maildir}
virtual_mailbox_maps = texthash:{cdir}/vmailbox
virtual_alias_maps = texthash:{cdir}/virtual
virtual_uid_maps = static:{MAIL_UID}
virtual_gid_maps = static:{MAIL_GID}
virtual_minimum_uid = {MAIL_UID}
message_size_limit = {self.size_limit}
smtpd_delay_reject = no
disable_vrfy_command = no
smtpd_helo_required = no
smtputf8_enable = yes
smtpd_sender_restrictions = check_sender_access texthash:{cdir}/sender_access
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access texthash:{cdir}/recipient_access, reject_unlisted_recipient
smtpd_sasl_type = dovecot
smtpd_sasl_path = {self.dcdir}/run/auth-postfix
smtpd_sasl_auth_enable = no
smtpd_tls_auth_only = no
smtpd_tls_loglevel = 1
smtpd_tls_session_cache_database =
smtpd_timeout = 30s
maillog_file = {cdir}/maillog
maillog_file_prefixes = {cdir}
{tls_main}"""
        extra_main = ""
        if tls:
            if self.strict:
                submission = """\
submission inet  n  -  n  -  -  smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_mechanism_filter=plain,login
"""
            else:
                submission = """\
submission inet  n  -  n  -  -  smtpd
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=no
"""
            services = """\
smtp       inet  n  -  n  -  -  smtpd
""" + submission + """\
465        inet  n  -  n  -  -  smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
"""
            for n in self.services:
                services += EXTRA_SERVICES[n][2]
                extra_main += EXTRA_SERVICES[n][3]
            if self.strict:
                extra_main += ("disable_vrfy_command = yes\n"
                               "smtpd_tls_protocols = >=TLSv1.2\n"
                               "smtpd_tls_mandatory_protocols = >=TLSv1.2\n")
        else:
            services = """\
2525       inet  n  -  n  -  -  smtpd
"""
        if self.lmtp and tls:
            # virtual mail goes to dovecot over LMTP on TCP; one connection per
            # delivery, closed with QUIT (no cache), so the capture holds it whole
            extra_main += ("virtual_transport = lmtp:inet:127.0.0.1:%d\n"
                           "lmtp_connection_cache_on_demand = no\n"
                           "lmtp_destination_recipient_limit = 50\n" % LMTP_PORT)
        if tls and self.tls_variant.get("postfix"):
            extra_main += self.tls_variant["postfix"]
        if tls and self.postfix_extra.get("main"):
            extra_main += self.postfix_extra["main"]
        if tls and self.tls_variant.get("posture"):
            # the tls-posture/ scenarios: one of lib/posture.py's chains
            import posture
            extra_main += posture.postfix_main(os.path.dirname(c["crt"]), self.tls_variant["posture"],
                                               self.tls_variant.get("weak_ciphers", False))
        if extra_main:
            # later lines win in main.cf
            main += "# scenario variant\n" + extra_main
        _w(os.path.join(cdir, "main.cf"), main)
        master = services + """\
pickup     unix  n  -  n  60 1  pickup
cleanup    unix  n  -  n  -  0  cleanup
qmgr       unix  n  -  n  300 1 qmgr
tlsmgr     unix  -  -  n  1000? 1 tlsmgr
rewrite    unix  -  -  n  -  -  trivial-rewrite
bounce     unix  -  -  n  -  0  bounce
defer      unix  -  -  n  -  0  bounce
trace      unix  -  -  n  -  0  bounce
verify     unix  -  -  n  -  1  verify
flush      unix  n  -  n  1000? 0 flush
proxymap   unix  -  -  n  -  -  proxymap
proxywrite unix  -  -  n  -  1  proxymap
smtp       unix  -  -  n  -  -  smtp
relay      unix  -  -  n  -  -  smtp
showq      unix  n  -  n  -  -  showq
error      unix  -  -  n  -  -  error
retry      unix  -  -  n  -  -  error
discard    unix  -  -  n  -  -  discard
local      unix  -  n  n  -  -  local
virtual    unix  -  n  n  -  -  virtual
lmtp       unix  -  -  n  -  -  lmtp
anvil      unix  -  -  n  -  1  anvil
scache     unix  -  -  n  -  1  scache
postlog    unix-dgram n - n - 1 postlogd
"""
        _w(os.path.join(cdir, "master.cf"), master)

    def _write_dovecot(self):
        d = self.dcdir
        os.makedirs(os.path.join(d, "run"), exist_ok=True)
        os.makedirs(os.path.join(d, "state"), exist_ok=True)
        users = "".join("%s:{PLAIN}%s::::::\n" % (u, p) for u, p in USERS.items())
        _w(os.path.join(d, "users"), users, 0o640)
        shutil.chown(os.path.join(d, "users"), "root", "dovecot")
        if self.lmtp:
            quota = {LMTP_QUOTA_USER: " userdb_quota_rule=*:storage=" + LMTP_QUOTA}
            udb = "".join("%s::%d:%d::%s/%s::%s\n" % (u, MAIL_UID, MAIL_GID, self.maildir, u,
                                                     quota.get(u, "")) for u in USERS)
            _w(os.path.join(d, "userdb"), udb, 0o640)
            shutil.chown(os.path.join(d, "userdb"), "root", "dovecot")
            userdb = f"driver = passwd-file\n  args = username_format=%n {d}/userdb"
        else:
            userdb = f"driver = static\n  args = uid={MAIL_UID} gid={MAIL_GID} home={self.maildir}/%n"
        c = self.certs
        if self.dovecot_tls:
            ssl = (f"ssl = yes\nssl_cert = <{c['crt']}\nssl_key = <{c['key']}\n"
                   "ssl_min_protocol = TLSv1.2\n")
            if self.tls_variant.get("rsa"):
                ssl += f"ssl_alt_cert = <{c['rsa_crt']}\nssl_alt_key = <{c['rsa_key']}\n"
            ssl += self.tls_variant.get("dovecot", "")
            imaps = "  inet_listener imaps {\n    port = 993\n    ssl = yes\n  }\n"
            pop3s = "  inet_listener pop3s {\n    port = 995\n    ssl = yes\n  }\n"
        else:
            # no TLS at all: no STARTTLS/STLS offered, no 993/995
            ssl, imaps, pop3s = "ssl = no\n", "", ""
        conf = f"""\
# mxray capture lab: private dovecot instance (generated)
base_dir = {d}/run
state_dir = {d}/state
instance_name = mxlab
protocols = imap pop3{" lmtp" if self.lmtp else ""}
listen = {self.listen}
hostname = {HOSTNAME}
login_greeting = mxray-lab ready.
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
{ssl}disable_plaintext_auth = {"yes" if self.strict else "no"}
auth_mechanisms = {"plain login" if self.strict else "plain login cram-md5 apop"}
auth_verbose = yes
auth_failure_delay = 0
first_valid_uid = {MAIL_UID}
first_valid_gid = {MAIL_GID}
mail_location = maildir:~/Maildir
mail_uid = {MAIL_UID}
mail_gid = {MAIL_GID}
pop3_uidl_format = %08Xu
imap_idle_notify_interval = 10 mins
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/users
}}
userdb {{
  {userdb}
}}
service imap-login {{
  inet_listener imap {{
    port = 143
  }}
{imaps}}}
service pop3-login {{
  inet_listener pop3 {{
    port = 110
  }}
{pop3s}}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = create
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
}}
"""
        if self.lmtp:
            conf += f"""\
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {LMTP_PORT}
  }}
}}
lmtp_rcpt_check_quota = no
mail_plugins = $mail_plugins quota
protocol lmtp {{
  postmaster_address = postmaster@{DOMAIN}
  mail_plugins = $mail_plugins quota
}}
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage=1G
}}
"""
        if self.proxy:
            # Dovecot's listeners that expect the PROXY header (version 1
            # or 2) from HAProxy, which connects from a trusted network.
            conf += f"""\
haproxy_trusted_networks = {PROXY_ADDR}/32
service imap-login {{
  inet_listener imap_haproxy {{
    address = {BACKEND_ADDR}
    port = 143
    haproxy = yes
  }}
}}
service pop3-login {{
  inet_listener pop3_haproxy {{
    address = {BACKEND_ADDR}
    port = 110
    haproxy = yes
  }}
}}
"""
        _w(os.path.join(d, "dovecot.conf"), conf)

    def _write_haproxy(self):
        """HAProxy's configuration: TCP mode, one frontend per PROXY_FRONTENDS
        entry, each with its backend sending the PROXY header."""
        d = os.path.join(self.dir, "haproxy")
        os.makedirs(d, exist_ok=True)
        pem = os.path.join(d, "server.pem")
        with open(pem, "w") as f:
            for k in ("crt", "key"):
                with open(self.certs[k]) as g:
                    f.write(g.read())
        os.chmod(pem, 0o600)
        conf = ("global\n  nbthread 1\n\n"
                "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n"
                "  timeout server 30s\n\n")
        for name, (fport, bport, opts, tls) in PROXY_FRONTENDS.items():
            bind = "%s:%d" % (PROXY_ADDR, fport) + (" ssl crt %s" % pem if tls else "")
            conf += ("frontend fe_%s\n  bind %s\n"
                     "  unique-id-format mxlab-%%ci-%%cp\n  default_backend be_%s\n\n"
                     "backend be_%s\n  source %s\n  server s1 %s:%d %s\n\n"
                     % (name, bind, name, name, PROXY_ADDR, BACKEND_ADDR, bport, opts))
        path = os.path.join(d, "haproxy.cfg")
        _w(path, conf)
        return path

    # --------------------------------------------------------------- start
    def start_servers(self):
        cdirs = [self.pcdir] + ([self.pcdir_notls] if self.notls else []) + \
            ([self.pcdir_relay2] if self.relay2 else [])
        for cdir in cdirs:
            # Daemons keep inherited descriptors: never give them a pipe.
            with open(os.path.join(self.dir, "start.log"), "a") as log:
                r = subprocess.run(["postfix", "-c", cdir, "start"],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            if r.returncode != 0:
                raise RuntimeError("postfix start failed, see %s/maillog" % cdir)
            pidf = os.path.join(cdir, "spool", "pid", "master.pid")
            self.pids["postfix:" + cdir] = self._read_pid(pidf)
        with open(os.path.join(self.dir, "start.log"), "a") as log:
            r = subprocess.run(["dovecot", "-c", os.path.join(self.dcdir, "dovecot.conf")],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        if r.returncode != 0:
            raise RuntimeError("dovecot start failed, see %s/start.log" % self.dir)
        self.pids["dovecot"] = self._read_pid(os.path.join(self.dcdir, "run", "master.pid"))
        if self.proxy:
            cfg = self._write_haproxy()
            log = open(os.path.join(self.dir, "haproxy", "haproxy.log"), "w")
            p = subprocess.Popen(["haproxy", "-f", cfg, "-db"], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log)
            log.close()
            self.pids["haproxy"] = p.pid
            self.procs["haproxy"] = p
        self.wait_ports([25, 587, 465, 110, 143] +
                        ([(PROXY_ADDR, v[0]) for v in PROXY_FRONTENDS.values()] if self.proxy else []) +
                        ([(BACKEND_ADDR, 143), (BACKEND_ADDR, 110)] if self.proxy else []) +
                        ([995, 993] if self.dovecot_tls else []) +
                        ([2525] if self.notls else []) +
                        ([LMTP_PORT] if self.lmtp else []) +
                        ([(RELAY2_ADDR, 25)] if self.relay2 else []) +
                        [EXTRA_SERVICES[n][:2] for n in self.services])

    def start_proxy(self, name, argv, port, mount=()):
        """Starts a proxy daemon in the foreground (dante, tinyproxy) and
        waits for its port; lab.stop() ends it by PID. mount: (file, over)
        pairs bind-mounted in a mount namespace of the daemon's own (the
        system's /etc/passwd and /etc/shadow stay untouched)."""
        if mount:
            binds = "; ".join("mount --bind %s %s" % (a, b) for a, b in mount)
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    binds + '; exec "$@"', "sh"] + list(argv)
        log = open(os.path.join(self.dir, name + ".log"), "w")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.pids[name] = p.pid
        self.procs[name] = p
        self.wait_ports([port])

    @staticmethod
    def _read_pid(path, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with open(path) as f:
                    s = f.read().strip()
                if s:
                    return int(s)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("no pid file " + path)

    @staticmethod
    def listening_ports():
        """TCP ports in LISTEN state on IPv4, read from /proc (probing
        with connect() would leave sessions that later reach the capture):
        each as port and as (address, port)."""
        ports = set()
        with open("/proc/net/tcp") as f:
            next(f)
            for ln in f:
                fields = ln.split()
                if fields[3] == "0A":
                    a, p = fields[1].split(":")
                    addr = socket.inet_ntoa(struct.pack("<I", int(a, 16)))
                    ports.add(int(p, 16))
                    ports.add((addr, int(p, 16)))
        return ports

    def wait_ports(self, ports, timeout=15.0):
        """Wait until every port (a number, or (address, port)) listens."""
        end = time.monotonic() + timeout
        while True:
            missing = set(ports) - self.listening_ports()
            if not missing:
                return
            if time.monotonic() > end:
                raise RuntimeError("ports not listening: %s" % sorted(missing))
            time.sleep(0.05)

    def _start_and_wait(self, name, argv, log_path, stdout=subprocess.DEVNULL):
        """Start a capturing process and wait until it says 'listening on'."""
        err = open(log_path, "w+")
        p = subprocess.Popen(argv, stdout=stdout, stderr=err)
        self.pids[name] = p.pid
        end = time.monotonic() + 10
        while time.monotonic() < end:
            err.seek(0)
            if "listening on" in err.read():
                return p, err
            if p.poll() is not None:
                break
            time.sleep(0.05)
        err.seek(0)
        raise RuntimeError("%s did not start: %s" % (name, err.read()))

    def start_live(self, mxray, json_path, bpf):
        """Also capture with mxray itself (-i lo, the same filter), its
        records to json_path and its own -w copy to json_path's .pcap:
        tests/live.sh compares them with the file tcpdump writes.  The
        records come through a pipe (--json -, as into kcat or a shipper):
        a thread copies each line to json_path as it arrives, and its
        arrival time (time.time()) to json_path's .arrivals, so that
        live.sh can tell that mxray flushes each record as it is made."""
        base = json_path[:-len(".json")]
        self.live, self.live_err = self._start_and_wait(
            "mxray", [mxray, "-i", "lo", "-f", bpf, "-w", base + ".pcap",
                      "--json", "-"], base + ".log", stdout=subprocess.PIPE)
        out = self.live.stdout

        def copy():
            with open(json_path, "wb") as f, open(base + ".arrivals", "w") as a:
                for line in out:  # bounded: ends when mxray closes its output
                    f.write(line)
                    a.write("%.6f\n" % time.time())
        self.live_reader = threading.Thread(target=copy, daemon=True)
        self.live_reader.start()
        self.live_base = base

    def stop_live(self):
        """SIGINT, as a user's Ctrl-C: mxray flushes its sessions and ends."""
        p = getattr(self, "live", None)
        if p is None:
            return
        with open(self.live_base + ".sigint", "w") as f:
            f.write("%.6f\n" % time.time())
        p.send_signal(signal.SIGINT)
        try:
            rc = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        self.pids.pop("mxray", None)
        self.live_reader.join(timeout=20)
        p.stdout.close()
        self.live = None
        self.live_err.close()
        if rc != 0:
            raise RuntimeError("live mxray exited with %d" % rc)

    def start_capture(self, path, bpf="tcp", iface="lo", ns=None, name="tcpdump",
                      buffer_kib=None):
        """tcpdump on iface (lo; or an interface of namespace ns, see
        ns_argv), TCP only or the filter bpf, written to path; waits until
        listening.  Several may run at once, each under its own name.
        buffer_kib: the kernel buffer (tcpdump -B) instead of libpcap's 2 MiB."""
        big = ["-B", str(buffer_kib)] if buffer_kib else []
        p, err = self._start_and_wait(
            name, self.ns_argv(ns, ["tcpdump", "-i", iface, "-s", "0", "-U", "-n"] + big +
                               ["--immediate-mode", "-w", path, bpf]),
            path + ".tcpdump.log")
        self.captures.append((name, p, err, path))
        self.tcpdump = p
        time.sleep(0.2)

    def stop_capture(self):
        """Stop every tcpdump (0.5 s after the client, for the FIN/ACKs);
        returns their logs, one after the other."""
        if not self.captures:
            return ""
        time.sleep(0.5)           # let FIN/ACKs reach the capture
        logs = []
        for name, p, err, path in self.captures:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            self.pids.pop(name, None)
            err.seek(0)
            logs.append(err.read())
            err.close()
            os.unlink(path + ".tcpdump.log")
        self.captures = []
        self.stop_live()
        self.tcpdump = None
        return "".join(logs)

    # ---------------------------------------------------------------- exim
    def start_exim(self, address, exim_bin):
        """A real exim 4 (Debian's exim4-daemon-light binary, unpacked by
        run-all, not installed: it conflicts with postfix) on address:25,
        VRFY and EXPN allowed to everyone, STARTTLS offered, no delivery
        (queue_only).  The binary looks up its compiled-in user Debian-exim
        before reading any configuration, so it runs in a private mount
        namespace where /etc/passwd and /etc/group are copies with that user
        added (uid/gid of Debian's mail user); nothing outside changes."""
        if not exim_bin or not os.path.exists(exim_bin):
            raise RuntimeError("exim binary not found (%s); run-all unpacks "
                               "exim4-daemon-light" % exim_bin)
        d = os.path.join(self.dir, "exim")
        for sub in ("spool", "log"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
            os.chown(os.path.join(d, sub), MAIL_UID, MAIL_GID)
        with open("/etc/passwd") as f:
            pw = f.read()
        with open("/etc/group") as f:
            gr = f.read()
        _w(os.path.join(d, "passwd"), pw.rstrip("\n") + "\nDebian-exim:x:%d:%d:exim "
           "(mxray lab):/nonexistent:/usr/sbin/nologin\n" % (MAIL_UID, MAIL_GID))
        _w(os.path.join(d, "group"), gr.rstrip("\n") + "\nDebian-exim:x:%d:\n" % MAIL_GID)
        _w(os.path.join(d, "aliases"), "team: alice@%s, bob@%s\n" % (DOMAIN, DOMAIN))
        users = " : ".join(USERS)
        conf = f"""\
# mxray capture lab: private exim instance (generated)
primary_hostname = {HOSTNAME}
qualify_domain = {DOMAIN}
domainlist local_domains = {DOMAIN}
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
exim_path = {exim_bin}
keep_environment =
local_interfaces = {address}
daemon_smtp_ports = 25
smtp_banner = $smtp_active_hostname ESMTP Exim $version_number mxray-lab
host_lookup =
rfc1413_hosts =
queue_only = true
# VRFY and EXPN answered for anyone: the misconfiguration the scenario shows
acl_smtp_vrfy = accept
acl_smtp_expn = accept
recipient_unqualified_hosts = *
acl_smtp_rcpt = acl_check_rcpt
tls_advertise_hosts = *
tls_certificate = {self.certs['crt']}
tls_privatekey = {self.certs['key']}

begin acl
acl_check_rcpt:
  accept domains = +local_domains
         verify = recipient
  deny   message = relay not permitted

begin routers
aliases:
  driver = redirect
  domains = +local_domains
  data = ${{lookup{{$local_part}}lsearch{{{d}/aliases}}
users:
  driver = accept
  domains = +local_domains
  local_parts = {users}
  transport = nowhere

begin transports
nowhere:
  driver = appendfile
  file = {d}/mbox-$local_part
"""
        _w(os.path.join(d, "exim.conf"), conf)
        script = ("mount --bind {d}/passwd /etc/passwd && "
                  "mount --bind {d}/group /etc/group && "
                  "exec {exe} -C {d}/exim.conf -bdf").format(d=d, exe=exim_bin)
        log = open(os.path.join(d, "start.log"), "w")
        p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--",
                              "sh", "-c", script],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.pids["exim"] = p.pid       # unshare and sh exec: this is exim
        self.procs["exim"] = p
        try:
            self.wait_ports([(address, 25)])
        except RuntimeError:
            raise RuntimeError("exim did not start, see %s/start.log and %s/log"
                               % (d, d))

    # ---------------------------------------------------------------- stop
    def stop(self):
        """End every process we started, by PID.  Safe to call twice."""
        if self.tcpdump is not None:
            try:
                self.stop_capture()
            except Exception:
                pass
        for name, pid in list(self.pids.items()):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for name, pid in list(self.pids.items()):
            for _ in range(200):        # bounded: 10 s
                if not _alive(pid):
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.pids.pop(name, None)
            p = self.procs.pop(name, None)
            if p is not None:
                p.wait(timeout=10)      # reap our child

    # ------------------------------------------------------------- helpers
    def wait_delivered(self, user, count, timeout=15.0):
        """Wait until user's Maildir/new holds count messages; returns paths
        sorted by delivery order (mtime, then name)."""
        nd = os.path.join(self.maildir, user, "Maildir", "new")
        end = time.monotonic() + timeout
        while True:
            files = [os.path.join(nd, f) for f in os.listdir(nd)]
            if len(files) >= count or time.monotonic() > end:
                break
            time.sleep(0.1)
        files.sort(key=lambda p: (os.stat(p).st_mtime_ns, p))
        return files

    def seed_mailbox(self, user, messages):
        """Put messages (CRLF bytes) straight into user's Maildir/cur with
        fixed file names, stored with LF line ends as postfix would store
        them, so POP3/IMAP sessions see the same mailbox every run."""
        md = os.path.join(self.maildir, user, "Maildir")
        cur = os.path.join(md, "cur")
        names = []
        for i, data in enumerate(messages, 1):
            lf = data.replace(b"\r\n", b"\n")
            name = "1700000000.M%dP1.%s,S=%d,W=%d:2," % (i, HOSTNAME, len(lf), len(data))
            p = os.path.join(cur, name)
            with open(p, "wb") as f:
                f.write(lf)
            os.chown(p, MAIL_UID, MAIL_GID)
            t = 1700000000 + i
            os.utime(p, (t, t))
            names.append(name)
        self.write_uidlist(user, names)

    def write_uidlist(self, user, names):
        """A dovecot-uidlist with a fixed UIDVALIDITY and mailbox GUID, so
        UIDs, UIDVALIDITY and UIDL values are the same every run."""
        md = os.path.join(self.maildir, user, "Maildir")
        guid = "%032x" % (0x6d786c6162 + len(user))
        lines = ["3 V1700000000 N%d G%s\n" % (len(names) + 1, guid)]
        for uid, name in enumerate(names, 1):
            lines.append("%d :%s\n" % (uid, name))
        p = os.path.join(md, "dovecot-uidlist")
        with open(p, "w") as f:
            f.write("".join(lines))
        os.chown(p, MAIL_UID, MAIL_GID)
