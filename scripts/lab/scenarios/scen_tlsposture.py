"""TLS posture scenarios (issue 27, "TLS posture, where auditors look").

Each capture pcaps/tls-posture/<name>.pcap is one postfix on port 25 serving
one certificate of lib/posture.py (made with openssl for the run), and a
scripted client that does EHLO, STARTTLS, EHLO and QUIT without verifying
it, offering TLS 1.2 at most: TLS 1.3 encrypts the certificate (it is then
read only with --tls-keylog, as in the keylog/ captures).  Beside each capture, <name>.ca.pem is the run's root CA: mxray
--tls-ca <name>.ca.pem judges the chain against it (tests/oracle/
check_tls_posture.py, golden.py), so that the clean chain verifies and
nothing depends on the machine's store.  Each capture is meant to raise one
TLS finding (docs/lab.md); the clean one none.
"""
import hashlib
import os
import shutil
import ssl

from driver import scenario
import posture

EHLO = "EHLO client.lab.test"


def _client_ctx(ciphers="DEFAULT:@SECLEVEL=0", tls12=False):
    """A client that takes any certificate (the point is what the server
    shows), at security level 0 so that RSA 1024 and SHA-1 are accepted."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.set_ciphers(ciphers)
    if tls12:
        c.maximum_version = ssl.TLSVersion.TLSv1_2
    return c


def _keep_ca(ctx):
    """The run's root CA beside the capture, as <name>.ca.pem."""
    base = ctx.outdir[:-len(".d")] if ctx.outdir.endswith(".d") else ctx.outdir
    shutil.copyfile(posture.ca_file(os.path.dirname(ctx.lab.certs["crt"])), base + ".ca.pem")


def _session(ctx, note, sni=True, ciphers="DEFAULT:@SECLEVEL=0", tls12=True):
    s = ctx.smtp(25, tlsctx=_client_ctx(ciphers, tls12), note=note)
    if not sni:
        s.sni = None
    s.info["sni"] = s.sni
    s.smtp_reply()
    s.smtp(EHLO)
    s.smtp("STARTTLS")
    s.starttls()
    s.info["tls_peer_certificate_sha256"] = _peer_sha256(s)
    s.smtp(EHLO)
    s.smtp("QUIT")
    s.close()
    return s


def _peer_sha256(s):
    der = s.sock.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


def _register(kind, summary, sessions):
    @scenario("tls-posture/" + kind, summary, tls_variant={"posture": kind})
    def run(ctx):
        _keep_ca(ctx)
        for note, sni in sessions:
            _session(ctx, note, sni=sni)
    return run


SNI = [("STARTTLS, SNI mx.lab.test", True)]
# kind (lib/posture.py), summary, sessions (note, whether the client sends SNI)
KINDS = [
    ("clean", "STARTTLS to a postfix whose chain is sound: lab root -> intermediate -> "
     "mx.lab.test, RSA 2048, SHA-256, valid now, sent with the intermediate; no TLS finding",
     SNI),
    ("expired", "STARTTLS; the server's certificate expired on 2021-01-01 (valid from "
     "2020-01-01): MX-TLS-CERT-EXPIRED at the capture's time",
     SNI),
    ("not-yet-valid", "STARTTLS; the server's certificate is valid only from 2040-01-01: "
     "MX-TLS-CERT-NOT-YET-VALID",
     SNI),
    ("self-signed", "STARTTLS; the server's certificate for mx.lab.test is signed by its "
     "own key: MX-TLS-CERT-SELF-SIGNED",
     SNI),
    ("untrusted", "STARTTLS; the server's certificate is signed by a CA the CA file does "
     "not hold (mxray rogue CA): MX-TLS-CERT-UNTRUSTED",
     SNI),
    ("name-mismatch", "STARTTLS; the certificate names other.example only: with the SNI "
     "mx.lab.test, then without SNI (the greeting's mx.lab.test is checked): "
     "MX-TLS-CERT-NAME-MISMATCH twice",
     [("STARTTLS, SNI mx.lab.test", True), ("STARTTLS, no SNI", False)]),
    ("rsa1024", "STARTTLS; the certificate's key is RSA 1024 bits: MX-TLS-WEAK-KEY",
     SNI),
    ("sha1", "STARTTLS; the certificate is signed with sha1WithRSAEncryption: "
     "MX-TLS-SHA1-SIGNATURE",
     SNI),
]
for _kind, _summary, _sessions in KINDS:
    _register(_kind, _summary, _sessions)


@scenario("tls-posture/weak-cipher", "STARTTLS to a postfix that allows every suite at "
          "security level 0 (the clean chain): a client offering only NULL-SHA256 gets "
          "TLS_RSA_WITH_NULL_SHA256 (no encryption), a second offering only ADH-AES128-SHA256 "
          "gets TLS_DH_anon_WITH_AES_128_CBC_SHA256 (no certificate): MX-TLS-WEAK-CIPHER twice",
          tls_variant={"posture": "clean", "weak_ciphers": True})
def weak_cipher(ctx):
    _keep_ca(ctx)
    for suite, want in (("NULL-SHA256", "NULL-SHA256"), ("ADH-AES128-SHA256", "ADH-AES128-SHA256")):
        s = _session(ctx, "STARTTLS, client offers only %s" % suite,
                     ciphers=suite + ":@SECLEVEL=0")
        if s.info["tls_cipher"] != want:
            raise RuntimeError("negotiated %s, not %s" % (s.info["tls_cipher"], want))
