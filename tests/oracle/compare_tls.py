#!/usr/bin/env python3
"""compare_tls: check mxray's `tls` records against tshark's TLS dissection.

Usage:
  tests/oracle/compare_tls.py [-v] [-j N] [--mxray PATH] [--known FILE] [CAPTURE...]

With no CAPTURE, every capture under <repo>/pcaps (recursively, *.pcap and
*.pcapng) is checked, plus every capture of ../shared/corpus/MANIFEST.tsv
(column `path`) whose `contents` say TLS=yes.  A CAPTURE may be given
relative to the current directory, the repository root, this script's
directory or the corpus; `.gz` captures are decompressed to a temporary file.

For each capture, mxray runs with `-q --json -` and tshark with
  tshark -r F -Y "tls.handshake.type == 1 || tls.handshake.type == 2"
         -T fields -e frame.number -e tcp.stream -e tls.handshake.type ...
(server name, versions, cipher suites, ALPN, JA3 and JA3S with their full
strings, extension types, signature algorithms), plus, when the capture holds
a Certificate message, `-T pdml` for the subject and issuer of the first
certificate of each stream, and a pass listing every TCP stream's endpoints.
Each mxray flow is matched to the tshark stream with the same endpoint pair
whose first frame is the last one at or before the flow's first frame.

Per tshark stream that carries a ClientHello or a ServerHello and is an mxray
mail flow, these are compared with the flow's `tls` record:
  sni               tls.handshake.extensions_server_name of the ClientHello
  versions_offered  tls.handshake.extensions.supported_version of the
                    ClientHello (GREASE left out), else its
                    tls.handshake.version
  version           the ServerHello's supported_version, else its version
                    (the last ServerHello: a HelloRetryRequest comes first)
  ciphers_offered   the ClientHello's tls.handshake.ciphersuite, GREASE left
                    out (tshark's numbers named with tshark's own table,
                    `tshark -G values`; where tshark names a code point the
                    IANA registry does not, mxray's hex "0xcc14" is taken)
  cipher            the ServerHello's tls.handshake.ciphersuite
  alpn_offered      the ClientHello's tls.handshake.extensions_alpn_str
  alpn              the ServerHello's
  ja3, ja3_string   tls.handshake.ja3 and ja3_full of the first ClientHello
  ja3s              tls.handshake.ja3s of the last ServerHello
  ja4               tshark 4.0 has no JA4: it is computed here from tshark's
                    fields (ciphersuite, extension.type, sig_hash_alg,
                    extensions_alpn_str, supported_version) following FoxIO's
                    technical_details/JA4.md, independently of mxray's C;
                    skipped when the hello has signature_algorithms_cert
                    (tshark files its values under the same field)
  certificate       subject and issuer of the first certificate (TLS <= 1.2),
                    from tshark's RDNSequence items, rebuilt in RFC 4514
                    order (last RDN first) with OpenSSL's short names

Each stream is classified:
  ok        every field agrees
  known     listed in tests/oracle/compare_tls.known (TSV: capture path,
            tshark stream, reason; the capture path is relative to the corpus
            for corpus captures and to the repository otherwise); an entry no
            longer needed is reported with a note.  Only tshark errors
            (checked against the packets) and by-design differences belong
            there, never an mxray bug
  mismatch  the differing fields are printed, mxray's value then tshark's
  skip      counted apart, with the reason: a STARTTLS flow for which
            mxray writes no `tls` record yet (the mail dissectors hand the
            bytes after STARTTLS/STLS to the TLS observer only once they are
            wired to it); such a flow is compared as soon as it has one
  n/a       not counted (shown with -v): a capture without any hello, or a
            TLS stream that is not a mail flow for mxray (HTTPS on 443)

One line is printed per stream that is a mismatch or known (every stream
with -v), then
`N passed, M failed, K skipped`.  Exit status: 0 all passed, 1 failures (or a
tool failed), 2 usage error, 77 skipped (tshark absent).

Options:
  -v, --verbose   print every stream, skipped ones too
  -j N            captures processed in parallel (default 2)
  --mxray PATH    the mxray binary (default <repo>/build/mxray)
  --known FILE    known-differences file (default tests/oracle/compare_tls.known)
"""
import hashlib
import html
import json
import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET

if __package__ in (None, ""):   # run as a file: tests/ holds the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from oracle import common  # noqa: E402
from oracle.common import AGG, fmt_ep, run  # noqa: E402

TLS_PORTS = {465, 993, 995}

# tshark's X.509 attribute names -> OpenSSL's short names (RFC 4514 §3, RFC 2985).
ATTR = {
    "id-at-commonName": "CN", "id-at-countryName": "C", "id-at-localityName": "L",
    "id-at-stateOrProvinceName": "ST", "id-at-organizationName": "O",
    "id-at-organizationalUnitName": "OU", "id-at-streetAddress": "street",
    "id-at-postalCode": "postalCode", "pkcs-9-at-emailAddress": "emailAddress",
    "id-domainComponent": "DC", "id-at-serialNumber": "serialNumber", "id-at-title": "title",
    "id-at-givenName": "GN", "id-at-surname": "SN", "id-at-businessCategory": "businessCategory",
    "id-at-name": "name", "id-at-initials": "initials", "id-at-pseudonym": "pseudonym",
    "id-at-generationQualifier": "generationQualifier", "id-at-dnQualifier": "dnQualifier",
    "id-userid": "UID",
}

FIELDS = ["frame.number", "tcp.stream", "tls.handshake.type", "tls.handshake.extensions_server_name",
          "tls.handshake.version", "tls.handshake.extensions.supported_version",
          "tls.handshake.ciphersuite", "tls.handshake.extensions_alpn_str", "tls.handshake.ja3",
          "tls.handshake.ja3_full", "tls.handshake.ja3s", "tls.handshake.extension.type",
          "tls.handshake.sig_hash_alg"]


def vals(field):
    return [v for v in field.split(AGG) if v != ""] if field else []


def num(text):
    text = text.strip()
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def grease(v):
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


def version_name(v):
    if v == 0x0002:
        return "SSL 2.0"
    if v == 0x0300:
        return "SSL 3.0"
    if 0x0301 <= v <= 0x0304:
        return "TLS 1.%d" % ((v & 0xFF) - 1)
    if (v >> 8) == 0x7F:
        return "TLS 1.3 draft %d" % (v & 0xFF)
    return "0x%04x" % v


def ja4(ciphers, exts, sigalgs, alpn, versions, legacy):
    """FoxIO JA4 (technical_details/JA4.md) from tshark's fields."""
    vs = [v for v in versions if not grease(v)]
    v = max(vs) if vs else legacy
    ver = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
           0x0002: "s2"}.get(v, "00")
    c = [x for x in ciphers if not grease(x)]
    e = [x for x in exts if not grease(x)]
    if alpn:
        raw = alpn.encode("utf-8", "surrogateescape")
        f, l = raw[0], raw[-1]
        alnum = lambda b: 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A
        ap = chr(f) + chr(l) if alnum(f) and alnum(l) else "%x%x" % (f >> 4, l & 15)
    else:
        ap = "00"
    b = hashlib.sha256(",".join("%04x" % x for x in sorted(c)).encode()).hexdigest()[:12] \
        if c else "000000000000"
    es = sorted(x for x in e if x not in (0, 16))
    text = ",".join("%04x" % x for x in es)
    s = [x for x in sigalgs if not grease(x)]
    if s:
        text += "_" + ",".join("%04x" % x for x in s)
    cc = hashlib.sha256(text.encode()).hexdigest()[:12] if es else "000000000000"
    return "t%s%s%02d%02d%s_%s_%s" % (ver, "d" if 0 in e else "i", min(len(c), 99),
                                      min(len(e), 99), ap, b, cc)


_CIPHERS = None


def cipher_names():
    """tshark's cipher suite numbers -> names (`tshark -G values`)."""
    global _CIPHERS
    if _CIPHERS is None:
        _CIPHERS = {}
        res = run(["tshark", "-G", "values"])
        for line in res.stdout.decode("utf-8", "replace").splitlines():
            f = line.split("\t")
            if len(f) >= 4 and f[0] == "V" and f[1] == "tls.handshake.ciphersuite":
                _CIPHERS.setdefault(int(f[2]), f[3])
    return _CIPHERS


def cipher_as(mine, n):
    """tshark's cipher number n as mxray should name it: mxray's own name
    when it is tshark's name for n or n in hex (mxray names only the IANA
    registry; tshark also names drafts and vendor code points), else tshark's
    name (a mismatch)."""
    if n is None:
        return None
    hexname = "0x%04x" % n
    tname = cipher_names().get(n, hexname)
    return mine if mine in (tname, hexname) else tname


def rfc4514_split(text):
    """RFC 4514 text (as OpenSSL prints it) -> [(attr, value)], unescaped."""
    out, cur, i = [], "", 0
    parts = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if i + 2 < len(text) and all(c in "0123456789abcdefABCDEF" for c in text[i + 1:i + 3]):
                cur += chr(int(text[i + 1:i + 3], 16))
                i += 3
                continue
            cur += nxt
            i += 2
            continue
        if ch in ",+":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    for p in parts:
        a, _, v = p.partition("=")
        out.append((a, v))
    return out


# ---------------------------------------------------------------- tshark

def tshark_hellos(path, decode_as):
    """tcp.stream -> {"ch": first ClientHello fields, "sh": last ServerHello, "frames"}."""
    cmd = ["tshark"] + list(decode_as) + [
        "-r", path, "-Y", "tls.handshake.type == 1 || tls.handshake.type == 2", "-T", "fields",
        "-E", "separator=/t", "-E", "aggregator=" + AGG]
    for f in FIELDS:
        cmd += ["-e", f]
    out = {}
    for f in common.tshark_rows(cmd, len(FIELDS)):
        try:
            sid = int(vals(f[1])[0])
        except (ValueError, IndexError):
            continue
        types = [num(t) for t in vals(f[2])]
        st = out.setdefault(sid, {"ch": None, "sh": None})
        if 1 in types and st["ch"] is None:
            alpn = vals(f[7])
            st["ch"] = {
                "frame": int(f[0]),
                "sni": (vals(f[3]) or [None])[0],
                "version": num(vals(f[4])[0]) if vals(f[4]) else None,
                "versions": [num(v) for v in vals(f[5])],
                "ciphers": [num(v) for v in vals(f[6])],
                "alpn": alpn,
                "ja3": (vals(f[8]) or [None])[0],
                "ja3_full": (vals(f[9]) or [None])[0],
                "exts": [num(v) for v in vals(f[11])],
                "sigalgs": [num(v) for v in vals(f[12])],
            }
        if 2 in types:
            st["sh"] = {
                "frame": int(f[0]),
                "version": num(vals(f[4])[0]) if vals(f[4]) else None,
                "versions": [num(v) for v in vals(f[5])],
                "cipher": num(vals(f[6])[0]) if vals(f[6]) else None,
                "alpn": (vals(f[7]) or [None])[0],
                "ja3s": (vals(f[10]) or [None])[-1],
            }
    return out


def tshark_certs(path, decode_as):
    """tcp.stream -> (subject, issuer) of the first certificate, each a list
    of RDN texts ("id-at-commonName=x") in DER order."""
    cmd = ["tshark"] + list(decode_as) + ["-r", path, "-Y", "tls.handshake.type == 11", "-T", "pdml"]
    res = run(cmd)
    out = {}
    try:
        root = ET.fromstring(res.stdout.decode("utf-8", "replace"))
    except ET.ParseError:
        return out
    for pkt in root.iter("packet"):
        sid = None
        for fld in pkt.iter("field"):
            if fld.get("name") == "tcp.stream":
                sid = int(fld.get("show"))
                break
        if sid is None or sid in out:
            continue
        cert = next((c for c in pkt.iter("field") if c.get("name") == "tls.handshake.certificate"), None)
        if cert is None:
            continue
        names = {}
        for which in ("x509af.subject", "x509af.issuer"):
            node = next((c for c in cert.iter("field") if c.get("name") == which), None)
            items = []
            if node is not None:
                for it in node.iter("field"):
                    if it.get("name") == "x509if.RDNSequence_item":
                        sn = html.unescape(it.get("showname", ""))
                        a, b = sn.find("("), sn.rfind(")")
                        items.append(sn[a + 1:b] if a >= 0 and b > a else sn)
            names[which] = items
        out[sid] = (names["x509af.subject"], names["x509af.issuer"])
    return out


def tshark_name(items):
    """RDN items (DER order) -> [(short attr, value)], last RDN first (RFC 4514 §2.1)."""
    out = []
    for it in reversed(items):
        a, _, v = it.partition("=")
        out.append((ATTR.get(a, a), v))
    return out


# ---------------------------------------------------------------- mxray

def mxray_flows(mxray, path):
    def add(fl, r, t, span):
        if t == "flow":
            fl["tls_port"] = bool(r.get("tls_port"))
        elif t == "tls" and fl["tls"] is None:
            fl["tls"] = r
    return common.mx_flows(mxray, (), path, lambda r: common.mx_flow_start(
        r, proto=r.get("proto"), tls=None, tls_port=int(r["server_port"]) in TLS_PORTS), add)


# ---------------------------------------------------------------- compare

def compare(rec, th, cert):
    """Returns [(field, mxray value, tshark value)] of the fields that differ."""
    diffs = []

    def chk(name, mine, theirs):
        if mine != theirs:
            diffs.append((name, mine, theirs))

    ch, sh = th["ch"], th["sh"]
    if ch is not None:
        chk("sni", rec.get("sni"), ch["sni"])
        offered = [version_name(v) for v in ch["versions"] if not grease(v)] if ch["versions"] \
            else ([version_name(ch["version"])] if ch["version"] is not None else [])
        chk("versions_offered", rec.get("versions_offered"), offered)
        mine = rec.get("ciphers_offered") or []
        theirs = [c for c in ch["ciphers"] if not grease(c)]
        chk("ciphers_offered", mine, [cipher_as(mine[i] if i < len(mine) else None, c)
                                      for i, c in enumerate(theirs)])
        chk("alpn_offered", rec.get("alpn_offered"), ch["alpn"])
        chk("ja3", rec.get("ja3"), ch["ja3"])
        chk("ja3_string", rec.get("ja3_string"), ch["ja3_full"])
        if 50 not in ch["exts"] and ch["version"] is not None:
            chk("ja4", rec.get("ja4"), ja4(ch["ciphers"], ch["exts"], ch["sigalgs"],
                                          ch["alpn"][0] if ch["alpn"] else "", ch["versions"],
                                          ch["version"]))
    if sh is not None:
        v = sh["versions"][0] if sh["versions"] else sh["version"]
        chk("version", rec.get("version"), version_name(v) if v is not None else None)
        chk("cipher", rec.get("cipher"), cipher_as(rec.get("cipher"), sh["cipher"]))
        chk("alpn", rec.get("alpn"), sh["alpn"])
        chk("ja3s", rec.get("ja3s"), sh["ja3s"])
    if cert is not None:
        mc = rec.get("certificate") or {}
        for key, items in (("subject", cert[0]), ("issuer", cert[1])):
            mine = rfc4514_split(mc[key]) if mc.get(key) else None
            chk("certificate." + key, mine, tshark_name(items))
    return diffs


def short(v):
    s = json.dumps(v)
    return s if len(s) <= 160 else s[:157] + "..."




def check_capture(job):
    cap, path, opts = job
    results, used = [], set()
    tmp = tempfile.mkdtemp(prefix="compare-tls.")
    try:
        src = common.gunzip(path, tmp)
        mflows = mxray_flows(opts["mxray"], src)
        # Ports where mxray found mail by content (nDPI) or by --port: tshark's
        # TLS heuristics find TLS there anyway; STARTTLS needs the protocol.
        hellos = tshark_hellos(src, ())
        if not hellos:
            results.append(("n/a", "n/a       %s  no ClientHello or ServerHello" % cap))
            return results, used
        streams = common.tshark_streams(src)
        certs = tshark_certs(src, ()) if any(h["sh"] for h in hellos.values()) else {}
        per_stream, _ = common.flows_to_streams(mflows, streams)
        for sid in sorted(hellos):
            st = streams.get(sid)
            title = "%s -> %s" % (fmt_ep(st["a"]), fmt_ep(st["b"])) if st else "?"
            fls = per_stream.get(sid, [])
            where = "%s  stream %d  %s" % (cap, sid, title)
            if not fls:
                results.append(("n/a", "n/a       %s  not a mail flow for mxray" % where))
                continue
            fl = next((f for f in fls if f["tls"] is not None), fls[0])
            where += "  (mxray flow %d, %s)" % (fl["flow"], fl["proto"])
            rec = fl["tls"]
            if rec is None:
                if not fl["tls_port"]:
                    results.append(("skip", "skip      %s  STARTTLS: mxray's %s dissector does not hand"
                                    " the TLS to the observer yet, so no tls record" % (where, fl["proto"])))
                else:
                    results.append(("mismatch", "mismatch  %s  no tls record on an implicit-TLS flow"
                                    % where))
                continue
            diffs = compare(rec, hellos[sid], certs.get(sid))
            state = "mismatch" if diffs else "ok"
            reasons = []
            if diffs and (cap, sid) in opts["known"]:
                used.add((cap, sid))
                state = "known"
                reasons = ["listed: " + opts["known"][(cap, sid)]]
            text = "%-9s %s  [%s]" % (state, where, rec.get("how"))
            for r in reasons:
                text += "\n  known: %s" % r
            if state == "mismatch":
                for name, mine, theirs in diffs:
                    text += "\n  %s: mxray %s, tshark %s" % (name, short(mine), short(theirs))
            results.append((state, text))
    except Exception as e:  # our own failure: report, count as failed
        results.append(("mismatch", "mismatch  %s  error: %s: %s" % (cap, type(e).__name__, e)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results, used


# ---------------------------------------------------------------- main

class TlsCheck(common.TsharkCheck):
    name = "compare-tls"
    description = "Check mxray's tls records against tshark."
    proto = "TLS"
    known_file = "compare_tls.known"
    word = "tls=yes"
    full = False
    states = ["ok", "known", "mismatch", "n/a"]
    quiet = ("ok", "skip", "n/a")

    def prepare(self):
        cipher_names()  # once, before the threads

    def check_capture(self, job):
        return check_capture(job)

    def verbose_counts(self, counts):
        return "(ok %d, known %d, mismatch %d; skipped %d; not applicable %d)" % (
            counts["ok"], counts["known"], counts["mismatch"], counts["skip"], counts["n/a"])

    def summary(self, counts):
        return common.summary(counts["ok"] + counts["known"], counts["mismatch"],
                              ", %d skipped" % counts["skip"])


if __name__ == "__main__":
    sys.exit(TlsCheck().main())
