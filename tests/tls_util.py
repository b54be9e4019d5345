"""
tls_util: test certificates for the vkws TLS tests, made with the openssl
CLI into a temporary directory once per process.

A test CA (EC P-256) signs server certificates for 127.0.0.1 and
localhost, with keys in each form the server must read:

    ec-pkcs8    EC P-256, PKCS#8 ("PRIVATE KEY")
    ec-trad     EC P-256, SEC 1 ("EC PARAMETERS" + "EC PRIVATE KEY")
    rsa-pkcs8   RSA 2048, PKCS#8
    rsa-trad    RSA 2048, PKCS#1 ("RSA PRIVATE KEY")

Each kind has NAME.crt (the leaf then the CA: a two-certificate chain)
and NAME.key. ca.crt is what clients trust.
"""

import atexit
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile

KINDS = ("ec-pkcs8", "ec-trad", "rsa-pkcs8", "rsa-trad")

_dir = None


def _openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s"
                           % (" ".join(args), r.stderr.decode()))
    return r.stdout


def _key(kind, path, cwd):
    if kind == "ec-pkcs8":
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-out", path, cwd=cwd)
    elif kind == "ec-trad":
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-out", path,
                 cwd=cwd)
    elif kind == "rsa-pkcs8":
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                 "rsa_keygen_bits:2048", "-out", path, cwd=cwd)
    elif kind == "rsa-trad":
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                 "rsa_keygen_bits:2048", "-out", path + ".p8", cwd=cwd)
        _openssl("rsa", "-in", path + ".p8", "-traditional", "-out", path,
                 cwd=cwd)
    else:
        raise ValueError(kind)


def issue(name, kind, cn="vkws test"):
    """Make NAME.key (of kind) and NAME.crt (signed by the test CA, then
    the CA) in the directory; returns (crt, key) paths."""
    d = cert_dir()
    key = os.path.join(d, name + ".key")
    _key(kind, key, d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=critical,CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    _openssl("req", "-new", "-key", key, "-subj", "/CN=%s" % cn,
             "-out", name + ".csr", cwd=d)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt",
             "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
             "-extfile", ext, "-out", name + ".leaf", cwd=d)
    crt = os.path.join(d, name + ".crt")
    with open(crt, "wb") as out:
        for part in (name + ".leaf", "ca.crt"):
            with open(os.path.join(d, part), "rb") as f:
                out.write(f.read())
    return crt, key


def cert_dir():
    """The directory, with the CA and the four kinds made on first use."""
    global _dir
    if _dir is not None:
        return _dir
    d = tempfile.mkdtemp(prefix="vkws-tls-")
    atexit.register(shutil.rmtree, d, True)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-out", "ca.key", cwd=d)
    _openssl("req", "-new", "-x509", "-key", "ca.key", "-subj",
             "/CN=vkws test CA", "-days", "30", "-out", "ca.crt", cwd=d)
    _dir = d
    for k in KINDS:
        issue(k, k)
    return d


def pair(kind="ec-pkcs8"):
    d = cert_dir()
    return os.path.join(d, kind + ".crt"), os.path.join(d, kind + ".key")


def ca_file():
    return os.path.join(cert_dir(), "ca.crt")


def client_context():
    """An ssl context that trusts the test CA and checks the name."""
    ctx = ssl.create_default_context(cafile=ca_file())
    ctx.check_hostname = True
    return ctx


def leaf_fingerprint(crt):
    """SHA-256 of the first certificate in a PEM file."""
    with open(crt) as f:
        pem = f.read()
    end = pem.index("-----END CERTIFICATE-----") + len(
        "-----END CERTIFICATE-----")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem[:end])).hexdigest()


def peer_fingerprint(sslsock):
    return hashlib.sha256(sslsock.getpeercert(binary_form=True)).hexdigest()


def client_hello():
    """A real ClientHello (the first flight of a Python TLS client), from
    an in-memory handshake."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == b"\x16" and len(data) > 100
    return data
