"""``flowprobe validate`` as a user runs it: the installed command, exit status, output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from probe.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


def _flowprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probe", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=60, check=False)


def test_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "configs/ipfix-udp.json"]) == 0
    assert capsys.readouterr().out == (
        "configs/ipfix-udp.json: valid: 1 observation point, 1 selection process (selectAll), "
        "1 cache (timeoutCache, 9 fields, 5 keys), 1 exporting process → "
        "udp://127.0.0.1:4739 IPFIX\n")


@pytest.mark.parametrize(("name", "words"), [
    ("netflow-v5.json", "udp://127.0.0.1:2055 NetFlow v5"),
    ("netflow-v9.json", "udp://127.0.0.1:2055 NetFlow v9"),
    ("ipfix-tcp.json", "naturalCache, 11 fields, 5 keys"),
    ("sampling-count.json", "(sampCountBased)"),
    ("ipv4-ipv6.json", "17 fields, 10 keys"),
])
def test_summary_names_what_matters(capsys: pytest.CaptureFixture[str], name: str,
                                    words: str) -> None:
    assert main(["validate", str(CONFIGS / name)]) == 0
    assert words in capsys.readouterr().out


def test_summary_of_a_collector_only_config(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "collector.json"
    cfg.write_text(json.dumps({"collectingProcess": [{
        "name": "c", "udpCollector": [{"name": "u", "localIPAddress": ["127.0.0.1", "::1"]}],
        "tcpCollector": [{"name": "t", "localPort": 9995}]}]}))
    assert main(["validate", str(cfg)]) == 0
    assert capsys.readouterr().out == (
        f"{cfg}: valid: 1 collecting process ← udp://127.0.0.1:4739, udp://[::1]:4739, "
        "tcp://*:9995\n")


def test_rfc7951_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--rfc7951", str(CONFIGS / "offline-replay.json")]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    op = doc["ietf-ipfix-psamp:ipfix"]["observationPoint"][0]
    assert op["flowprobe:offlineFile"] == "pcaps/demo.pcap"
    assert op["flowprobe:maxObservingPackets"] == "0"  # uint64: a string in RFC 7951
    assert out.startswith('{\n  "ietf-ipfix-psamp:ipfix": {\n')


def test_installed_command_exit_status_and_no_traceback(tmp_path: Path) -> None:
    ok = _flowprobe("validate", "configs/goflowd-sample.json")
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.startswith("configs/goflowd-sample.json: valid: ")
    bad = tmp_path / "bad.json"
    bad.write_text('{"cache": [{"name": "c", "timeoutCache": {"maxFlows": -5}}]}')
    res = _flowprobe("validate", str(bad))
    assert res.returncode == 2 and res.stdout == ""
    assert "Traceback" not in res.stderr
    assert f"{bad}: /ipfix/cache[name='c']/timeoutCache/maxFlows: -5 is not a uint32" in \
        res.stderr.splitlines()
    broken = _flowprobe("validate", str(tmp_path / "missing.json"))
    assert (broken.returncode, broken.stderr) == (2, f"{tmp_path / 'missing.json'}: no such file\n")


def test_rfc7951_of_a_bad_config_prints_nothing(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text((CONFIGS / "ipfix-udp.json").read_text().replace('"ipfixVersion": 10',
                                                                     '"ipfixVersion": 7'))
    assert main(["validate", "--rfc7951", str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (f"{bad}: /ipfix/exportingProcess[name='Export']/destination"
                       "[name='Collector']/udpExporter/ipfixVersion: version 7 is not supported "
                       "(5 = NetFlow v5, 9 = NetFlow v9, 10 = IPFIX)\n")


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2
    assert "CONFIG" in capsys.readouterr().err


def test_hostile_configs_end_in_one_line(tmp_path: Path) -> None:
    """Issue #13's cases as a user meets them: the deep file was a RecursionError traceback,
    a layout of 140,000 fields (7.6 MB) took 7 minutes."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 1000 + "]" * 1000 + "\n")
    huge = tmp_path / "huge.json"
    doc = json.loads((CONFIGS / "ipfix-udp.json").read_text())
    doc["cache"][0]["timeoutCache"]["cacheLayout"]["cacheField"] += [
        {"name": f"F{i}", "ieName": "octetDeltaCount"} for i in range(140_000)]
    huge.write_text(json.dumps(doc))
    for path, words in ((deep, "line 1, column 33: nested more than 32 levels deep"),
                        (huge, "bytes; a config may hold at most 262144 bytes (256 KiB)")):
        res = _flowprobe("validate", str(path))
        assert (res.returncode, res.stdout) == (2, "")
        assert len(res.stderr.splitlines()) == 1, res.stderr[-500:]
        assert res.stderr.startswith(f"{path}: ") and words in res.stderr
