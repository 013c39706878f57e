"""IPFIX over TLS (RFC 7011 §11.3) against OpenSSL itself: ``openssl s_server`` as the
collector of flowprobe's exporter and ``openssl s_client`` as the exporter to flowprobe's
collector, so the TLS is real on both sides; what s_server decrypts decodes in ipfixDump.
Certificates are made here, with openssl, in a temporary directory: one authority for the
probe's endpoints, another nobody trusts, and certificates with the wrong names."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.config.model import Destination, Tls
from probe.export.tlstransport import TlsTransport
from tests.export.peers import free_port, have, wait_until
from tests.interop.test_ipfix_files import dumped_flows, json_flows

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo.pcap"
PY = [sys.executable, "-m", "probe"]

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("openssl", "ipfixDump"),
                                 reason="needs openssl and ipfixDump (libfixbuf-tools)")]


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True,
                   timeout=60)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout",
             f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}/O=flowprobe tests",
             cwd=d)


def _cert(d: Path, name: str, ca: str, dns: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={dns}/O=flowprobe tests", cwd=d)
    (d / f"{name}.ext").write_text(f"subjectAltName=DNS:{dns},IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
             cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "rogue-ca")
    _cert(d, "collector", "ca", "collector.example")
    _cert(d, "exporter", "ca", "exporter.example")
    _cert(d, "rogue", "rogue-ca", "exporter.example")  # the right name, the wrong authority
    return d


def tls(pki: Path, who: str, **names: list[str]) -> dict:
    return {"certificateFile": str(pki / f"{who}.pem"), "privateKeyFile": str(pki / f"{who}.key"),
            "trustedCaFile": str(pki / "ca.pem"), **names}


def exporter_config(tmp_path: Path, port: int, settings: dict) -> Path:
    cfg = json.loads((ROOT / "configs" / "ipfix-tcp.json").read_text())
    cfg["observationPoint"][0].pop("ifName", None)
    cfg["observationPoint"][0]["offlineFile"] = str(DEMO)
    exporter = cfg["exportingProcess"][0]["destination"][0]["tcpExporter"]
    exporter.update(destinationPort=port, transportLayerSecurity=settings)
    path = tmp_path / "exporter.json"
    path.write_text(json.dumps(cfg))
    return path


def s_server(pki: Path, port: int, out: Path) -> subprocess.Popen:
    """OpenSSL's TLS server asking for a client certificate (-Verify): it writes what it
    decrypts to ``out``; its stdin stays open, or it would end the connection at its EOF."""
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", pki / "collector.pem",
         "-key", pki / "collector.key", "-CAfile", pki / "ca.pem", "-Verify", "2", "-quiet",
         "-naccept", "1"], stdin=subprocess.PIPE, stdout=out.open("wb"), stderr=subprocess.PIPE)
    wait_until(lambda: _listening(port), "s_server listening")
    return proc


def _listening(port: int) -> bool:
    return f"127.0.0.1:{port} " in subprocess.run(["ss", "-ltn"], capture_output=True,
                                                   text=True, check=True).stdout


def test_export_through_openssl_s_server_decodes_in_ipfixdump(pki: Path, tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "decrypted.ipfix"
    server = s_server(pki, port, out)
    try:
        cfg = exporter_config(tmp_path, port, tls(pki, "exporter",
                                                  remoteSubjectFQDN=["collector.example"]))
        run = subprocess.run([*PY, "run", "-c", str(cfg)], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert run.returncode == 0, run.stderr
        (line,) = [ln for ln in run.stderr.splitlines() if ln.startswith("export Collector")]
        assert line.endswith("the collector read it all and closed the connection")
        records = int(re.search(r": (\d+) records", line).group(1))  # type: ignore[union-attr]
        _, err = server.communicate(timeout=30)
    finally:
        server.kill()
    # s_server verified the probe's certificate (mutual authentication) ...
    assert "CN = exporter.example" in err.decode() and "verify error" not in err.decode()
    # ... and what it decrypted is the IPFIX stream: ipfixDump reads it without a word
    shown = dumped_flows(out)
    read = subprocess.run([*PY, "collect", "--read", str(out)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert read.returncode == 0 and "malformed/refused: 0" in read.stderr
    assert sum(shown.values()) == records > 30 and shown == json_flows(read.stdout)


def test_exporter_refuses_an_unknown_authority_with_one_line(pki: Path, tmp_path: Path) -> None:
    port = free_port()
    server = s_server(pki, port, tmp_path / "nothing.bin")
    try:
        settings = tls(pki, "exporter") | {"trustedCaFile": str(pki / "rogue-ca.pem")}
        run = subprocess.run([*PY, "run", "-c", str(exporter_config(tmp_path, port, settings))],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        server.kill()
        server.communicate()
    assert run.returncode == 0
    said = [line for line in run.stderr.splitlines() if "no TLS session" in line]
    assert len(said) == 1  # once, however often the backoff retried
    # s_server sends its authority's certificate along: OpenSSL finds it self-signed
    assert said[0].endswith(f"export destination Collector: no TLS session with 127.0.0.1 port "
                            f"{port}: certificate verify failed: self-signed certificate in "
                            "certificate chain")
    assert re.search(r"export Collector \(tls://127.0.0.1:\d+\): 0 records in 0 messages "
                     r"\(0 bytes\); \d+ records not sent", run.stderr)
    assert (tmp_path / "nothing.bin").read_bytes() == b""


def test_exporter_refuses_a_collector_of_another_name(pki: Path, tmp_path: Path) -> None:
    port = free_port()
    server = s_server(pki, port, tmp_path / "nothing.bin")
    dest = Destination(name="C", transport="tcp", destination_address="127.0.0.1",
                       destination_port=port,
                       tls=Tls(certificate_file=str(pki / "exporter.pem"),
                               private_key_file=str(pki / "exporter.key"),
                               trusted_ca_file=str(pki / "ca.pem"),
                               remote_subject_fqdns=("flows.example", "*.collectors.example"),
                               remote_subject_dns=("CN=collector.example,O=other",)))
    transport = TlsTransport(dest)
    try:
        wait_until(lambda: transport.poll() or transport.last_error is not None, "a refusal")
    finally:
        transport.close()
        server.kill()
        server.communicate()
    assert not transport.up
    assert transport.last_error == (
        "its certificate is for O=flowprobe tests,CN=collector.example (collector.example), "
        "not remoteSubjectDN CN=collector.example,O=other or remoteSubjectFQDN flows.example, "
        "*.collectors.example")


def test_collector_takes_openssl_s_client_and_refuses_the_wrong_ones(pki: Path,
                                                                     tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "collector.json"
    cfg.write_text(json.dumps({"collectingProcess": [{"name": "C", "tcpCollector": [{
        "name": "tls", "localIPAddress": ["127.0.0.1"], "localPort": port,
        "transportLayerSecurity": tls(pki, "collector",
                                      remoteSubjectFQDN=["exporter.example"])}]}]}))
    collector = subprocess.Popen([*PY, "collect", "-c", str(cfg)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert collector.stderr is not None
    assert collector.stderr.readline().strip() == f"listening on tls://127.0.0.1:{port}"
    stream = tmp_path / "demo.ipfix"
    subprocess.run([*PY, "replay", str(DEMO), "--export", f"file:{stream}", "-q"], check=True,
                   cwd=ROOT, timeout=60)

    def s_client(who: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-cert", pki / f"{who}.pem",
             "-key", pki / f"{who}.key", "-CAfile", pki / "ca.pem", "-quiet", "-no_ign_eof"],
            stdin=stream.open("rb"), capture_output=True, timeout=30)

    try:
        assert s_client("exporter").returncode == 0
        s_client("rogue")  # signed by an authority the collector does not trust
        s_client("collector")  # trusted, but not a name the collector accepts
        time.sleep(0.5)
    finally:
        collector.send_signal(signal.SIGTERM)
        out, err = collector.communicate(timeout=30)
    assert collector.returncode == 0, err
    assert sum(json_flows(out).values()) == 38
    refused = [line for line in err.splitlines() if "refused" in line and "port" in line]
    assert len(refused) == 2
    assert re.fullmatch(rf"tls://127\.0\.0\.1:{port}: refused 127\.0\.0\.1 port \d+: "
                        r"certificate verify failed: unable to get local issuer certificate",
                        refused[0]), refused[0]
    assert refused[1].endswith("its certificate is for O=flowprobe tests,CN=collector.example "
                               "(collector.example), not remoteSubjectFQDN exporter.example")
    assert "malformed/refused: 2 (tls_refused 2)" in err


def test_tls_settings_that_cannot_work_are_one_line_errors(pki: Path, tmp_path: Path) -> None:
    def run(settings: dict) -> str:
        r = subprocess.run([*PY, "run", "-c", str(exporter_config(tmp_path, 1, settings))],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        (line,) = r.stderr.strip().splitlines()
        return line

    assert run(tls(pki, "exporter") | {"certificateFile": str(tmp_path / "none.pem")}) == \
        f"export destination Collector: certificateFile {tmp_path / 'none.pem'}: no such file"
    assert "not a certificate and its key in PEM" in run(
        tls(pki, "exporter") | {"privateKeyFile": str(pki / "collector.key")})
    assert run(tls(pki, "exporter", localSubjectFQDN=["probe.example"])) == (
        f"export destination Collector: certificateFile {pki / 'exporter.pem'}: certificate is "
        "for O=flowprobe tests,CN=exporter.example (exporter.example), not localSubjectFQDN "
        "probe.example")
