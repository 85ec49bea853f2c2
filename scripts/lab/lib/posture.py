"""Certificates of the tls-posture/ scenarios (issue 27, "TLS posture"), made with openssl.

One set per certificate directory (once per run-all, like labenv.ensure_certs):
a root CA (RSA 2048, SHA-256) and an intermediate under it; then one server
certificate per kind, each for mx.lab.test unless its kind says otherwise:

  clean          intermediate -> server, RSA 2048, SHA-256, valid now (sent with the intermediate)
  expired        the same, valid 2020-01-01 to 2021-01-01
  not-yet-valid  the same, valid 2040-01-01 to 2041-01-01
  self-signed    signed by its own key
  untrusted      signed by a second root that the CA file does not hold
  name-mismatch  for other.example only
  rsa1024        an RSA key of 1024 bits
  sha1           signed with SHA-1 (sha1WithRSAEncryption)

The root is what a capture's NAME.ca.pem holds (mxray --tls-ca).  postfix_main()
gives the main.cf lines that make the lab's postfix serve one of them
(smtpd_tls_chain_files), at OpenSSL security level 0 so that it loads the weak
ones at all (Debian's OpenSSL 3 refuses RSA 1024 and SHA-1 at its default
level 2).
"""
import os
import subprocess

HOST = "mx.lab.test"
KINDS = ("clean", "expired", "not-yet-valid", "self-signed", "untrusted",
         "name-mismatch", "rsa1024", "sha1")

# openssl ca: leaves with chosen dates (openssl x509 -req cannot set them in 3.0)
CA_CNF = """\
[ ca ]
default_ca = posture
[ posture ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
default_days = 3650
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ policy_any ]
organizationName = optional
commonName = supplied
"""

LEAF_EXT = """\
subjectAltName = DNS:{name}
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
"""

CA_EXT = """\
basicConstraints = critical, CA:TRUE{pathlen}
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def _run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _w(path, text):
    with open(path, "w") as f:
        f.write(text)


def _root(d, name, cn):
    key, crt, ext = (os.path.join(d, name + s) for s in (".key", ".crt", ".ext"))
    _run("openssl", "genrsa", "-out", key, "2048")
    _w(ext, CA_EXT.format(pathlen=""))
    _run("openssl", "req", "-x509", "-new", "-key", key, "-sha256", "-days", "7300",
         "-subj", "/O=mxray lab/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", crt)
    return key, crt


def _sign(d, issuer, name, csr, ext, md="sha256", start=None, end=None):
    """openssl ca: csr signed by issuer (key, crt) into d/name.crt."""
    ca = os.path.join(d, "ca-" + os.path.basename(issuer[1]).split(".")[0])
    if not os.path.isdir(ca):
        os.makedirs(os.path.join(ca, "newcerts"))
        _w(os.path.join(ca, "index.txt"), "")
        _w(os.path.join(ca, "serial"), "1000\n")
        _w(os.path.join(ca, "ca.cnf"), CA_CNF.format(dir=ca))
    crt = os.path.join(d, name + ".crt")
    argv = ["openssl", "ca", "-batch", "-notext", "-config", os.path.join(ca, "ca.cnf"),
            "-cert", issuer[1], "-keyfile", issuer[0], "-in", csr, "-out", crt,
            "-md", md, "-extfile", ext]
    if start:
        argv += ["-startdate", start, "-enddate", end]
    _run(*argv)
    return crt


def _leaf(d, name, issuer, bits=2048, host=HOST, md="sha256", start=None, end=None):
    key, csr, ext = (os.path.join(d, name + s) for s in (".key", ".csr", ".ext"))
    _run("openssl", "genrsa", "-out", key, str(bits))
    _run("openssl", "req", "-new", "-key", key, "-subj", "/O=mxray lab/CN=" + host, "-out", csr)
    _w(ext, LEAF_EXT.format(name=host))
    return key, _sign(d, issuer, name, csr, ext, md, start, end)


def ensure(certdir):
    """Makes the set in certdir/posture (once); returns that directory."""
    d = os.path.join(certdir, "posture")
    if os.path.exists(os.path.join(d, "done")):
        return d
    os.makedirs(d, exist_ok=True)
    root = _root(d, "root", "mxray posture root CA")
    rogue = _root(d, "rogue", "mxray rogue CA")
    ikey, icsr, iext = (os.path.join(d, "inter" + s) for s in (".key", ".csr", ".ext"))
    _run("openssl", "genrsa", "-out", ikey, "2048")
    _run("openssl", "req", "-new", "-key", ikey, "-subj", "/O=mxray lab/CN=mxray posture intermediate CA",
         "-out", icsr)
    _w(iext, CA_EXT.format(pathlen=", pathlen:0"))
    inter = (ikey, _sign(d, root, "inter", icsr, iext))
    leaves = {
        "clean": _leaf(d, "clean", inter),
        "expired": _leaf(d, "expired", inter, start="20200101000000Z", end="20210101000000Z"),
        "not-yet-valid": _leaf(d, "not-yet-valid", inter, start="20400101000000Z",
                               end="20410101000000Z"),
        "untrusted": _leaf(d, "untrusted", rogue),
        "name-mismatch": _leaf(d, "name-mismatch", inter, host="other.example"),
        "rsa1024": _leaf(d, "rsa1024", inter, bits=1024),
        "sha1": _leaf(d, "sha1", inter, md="sha1"),
    }
    skey = os.path.join(d, "self-signed.key")
    _run("openssl", "genrsa", "-out", skey, "2048")
    _run("openssl", "req", "-x509", "-new", "-key", skey, "-sha256", "-days", "3650",
         "-subj", "/O=mxray lab/CN=" + HOST, "-addext", "subjectAltName=DNS:" + HOST,
         "-addext", "extendedKeyUsage=serverAuth", "-out", os.path.join(d, "self-signed.crt"))
    leaves["self-signed"] = (skey, os.path.join(d, "self-signed.crt"))
    # Each kind's chain file: its key, its certificate, the intermediate when
    # the intermediate signed it (RFC 5246 §7.4.2: the server sends the chain).
    for kind, (key, crt) in leaves.items():
        parts = [key, crt] + ([inter[1]] if kind not in ("self-signed", "untrusted") else [])
        pem = "".join(open(p).read() for p in parts)
        _w(os.path.join(d, kind + ".pem"), pem)
        os.chmod(os.path.join(d, kind + ".pem"), 0o644)
    _w(os.path.join(d, "done"), "")
    return d


def ca_file(certdir):
    """The root CA's certificate: what the captures' NAME.ca.pem hold."""
    return os.path.join(ensure(certdir), "root.crt")


def postfix_main(certdir, kind, weak_ciphers=False):
    """main.cf lines (added last, so they win) that make postfix serve kind's
    chain; weak_ciphers also lets it choose NULL and anonymous suites."""
    d = ensure(certdir)
    lines = ("smtpd_tls_chain_files = %s\n"
             "smtpd_tls_ciphers = medium\n"
             "smtpd_tls_mandatory_ciphers = medium\n"
             "tls_medium_cipherlist = DEFAULT:@SECLEVEL=0\n" % os.path.join(d, kind + ".pem"))
    if weak_ciphers:
        lines += ("tls_medium_cipherlist = ALL:eNULL:@SECLEVEL=0\n"
                  "smtpd_tls_exclude_ciphers =\n")
    return lines
