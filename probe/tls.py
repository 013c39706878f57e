"""TLS for IPFIX over TCP (RFC 7011 §11.3, RFC 6728 transportLayerSecurity), both ends.

RFC 7011 asks for mutual authentication: the Exporting Process and the Collecting Process each
present a certificate and each checks the other's. The ``ssl`` module checks that a trusted
authority signed the peer's certificate; RFC 6728's name lists say which of those peers are
accepted, which ``peer_problem`` checks: the issuing authority by DN, the subject by DN or by
FQDN (subjectAltName DNS names, RFC 6125 wildcards; the common name when there is none). The
local lists check the probe's own certificate once, when the context is made, so a wrong
certificate file stops the start instead of every handshake.

Settings come as any object with the fields of ``probe.config.model.Tls`` (this module sits
below the config model and imports nothing of flowprobe but its errors).
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Any, Protocol

from probe.errors import UserError

# OpenSSL's long attribute names (what getpeercert() gives) of RFC 4514's short ones.
_ATTRIBUTES = {"cn": "commonname", "o": "organizationname", "ou": "organizationalunitname",
               "c": "countryname", "st": "stateorprovincename", "l": "localityname",
               "dc": "domaincomponent", "e": "emailaddress", "street": "streetaddress",
               "uid": "userid"}
_UNESCAPED = re.compile(r"(?<!\\)[,+]")

Certificate = dict[str, Any]  # as ssl.SSLSocket.getpeercert() returns it


class TlsSettings(Protocol):
    certificate_file: str
    private_key_file: str | None
    trusted_ca_file: str | None
    local_ca_dns: tuple[str, ...]
    local_subject_dns: tuple[str, ...]
    local_subject_fqdns: tuple[str, ...]
    remote_ca_dns: tuple[str, ...]
    remote_subject_dns: tuple[str, ...]
    remote_subject_fqdns: tuple[str, ...]


def parse_dn(text: str) -> tuple[tuple[str, str], ...]:
    """An RFC 4514 DN as sorted (attribute, value) pairs, case folded, for comparison."""
    pairs = []
    for part in _UNESCAPED.split(text):
        attr, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{text!r} is not a distinguished name (ATTR=value,...)")
        attr = attr.strip().casefold()
        value = re.sub(r"\\(.)", r"\1", value.strip())
        pairs.append((_ATTRIBUTES.get(attr, attr), value.casefold()))
    return tuple(sorted(pairs))


def cert_dn(rdns: tuple) -> tuple[tuple[str, str], ...]:
    """A certificate's subject or issuer (getpeercert() form) as ``parse_dn`` gives a DN."""
    return tuple(sorted((attr.casefold(), value.casefold()) for rdn in rdns
                        for attr, value in rdn))


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
          "domainComponent": "DC", "emailAddress": "E"}


def dn_text(rdns: tuple) -> str:
    """RFC 4514 text of a certificate's subject or issuer (last RDN first)."""
    return ",".join(f"{_SHORT.get(attr, attr)}={value}" for rdn in reversed(rdns)
                    for attr, value in rdn)


def cert_names(cert: Certificate) -> list[str]:
    """The DNS names a certificate is for: its subjectAltName DNS entries, else its CNs."""
    names = [v for kind, v in cert.get("subjectAltName", ()) if kind == "DNS"]
    if names:
        return names
    return [v for rdn in cert.get("subject", ()) for attr, v in rdn if attr == "commonName"]


def name_matches(pattern: str, fqdn: str) -> bool:
    """RFC 6125 §6.4: a ``*`` stands for exactly the whole leftmost label."""
    p, f = pattern.casefold().rstrip("."), fqdn.casefold().rstrip(".")
    if p.startswith("*."):
        head, _, rest = f.partition(".")
        return bool(head) and rest == p[2:]
    return p == f


def _problem(cert: Certificate, ca_dns: tuple[str, ...], subject_dns: tuple[str, ...],
             fqdns: tuple[str, ...], whose: str, lists: str) -> str | None:
    if ca_dns and cert_dn(cert.get("issuer", ())) not in {parse_dn(d) for d in ca_dns}:
        return (f"{whose} certificate was issued by {dn_text(cert.get('issuer', ()))}, not by "
                f"any {lists}CertificationAuthorityDN")
    if not (subject_dns or fqdns):
        return None
    if cert_dn(cert.get("subject", ())) in {parse_dn(d) for d in subject_dns}:
        return None
    names = cert_names(cert)
    if any(name_matches(n, f) for n in names for f in fqdns):
        return None
    wanted = " or ".join(filter(None, (f"{lists}SubjectDN {', '.join(subject_dns)}"
                                       if subject_dns else "",
                                       f"{lists}SubjectFQDN {', '.join(fqdns)}"
                                       if fqdns else "")))
    return (f"{whose} certificate is for {dn_text(cert.get('subject', ()))}"
            f"{' (' + ', '.join(names) + ')' if names else ''}, not {wanted}")


def peer_problem(cert: Certificate | None, settings: TlsSettings) -> str | None:
    """Why the peer (its verified certificate) is not accepted, or None."""
    if not cert:
        return "the peer presented no certificate"
    return _problem(cert, settings.remote_ca_dns, settings.remote_subject_dns,
                    settings.remote_subject_fqdns, "its", "remote")


def context(settings: TlsSettings, *, server: bool, where: str) -> ssl.SSLContext:
    """The SSL context of one endpoint; any problem with its files is a one-line UserError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # the names are RFC 6728's lists, checked by peer_problem
    ctx.verify_mode = ssl.CERT_REQUIRED  # both ways: RFC 7011 §11.3 mutual authentication
    cert, key = settings.certificate_file, settings.private_key_file
    for leaf, path in (("certificateFile", cert), ("privateKeyFile", key),
                       ("trustedCaFile", settings.trusted_ca_file)):
        if path is not None and not os.path.isfile(path):
            raise UserError(f"{where}: {leaf} {path}: no such file")
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise UserError(f"{where}: certificateFile {cert}"
                        f"{' / privateKeyFile ' + key if key else ''}: not a certificate and "
                        f"its key in PEM ({getattr(exc, 'reason', None) or exc})") from None
    try:
        if settings.trusted_ca_file:
            ctx.load_verify_locations(cafile=settings.trusted_ca_file)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH if not server
                                   else ssl.Purpose.CLIENT_AUTH)
    except (ssl.SSLError, OSError) as exc:
        raise UserError(f"{where}: trustedCaFile {settings.trusted_ca_file}: no PEM "
                        f"certificates ({getattr(exc, 'reason', None) or exc})") from None
    own = _own_certificate(cert)
    problem = _problem(own, settings.local_ca_dns, settings.local_subject_dns,
                       settings.local_subject_fqdns, f"certificateFile {cert}:", "local")
    if problem:
        raise UserError(f"{where}: {problem}")
    return ctx


def _own_certificate(path: str) -> Certificate:
    """The probe's own certificate, decoded as getpeercert() decodes a peer's."""
    decode = getattr(ssl._ssl, "_test_decode_cert", None)  # type: ignore[attr-defined]
    if decode is None:  # pragma: no cover - every CPython 3.11-3.13 has it
        return {}
    return decode(path)


def handshake_problem(exc: ssl.SSLError) -> str:
    """The reason a handshake failed, in the words a user can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    reason = exc.reason or str(exc)
    return reason.replace("_", " ").lower() if reason.isupper() else reason
