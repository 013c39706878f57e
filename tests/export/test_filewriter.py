"""fileWriter (RFC 5655): what ``flowprobe replay --export file:PATH`` and a config's fileWriter
write, read back with the tests' own decoder (``tests.export.wire``, written from the RFC
figures): templates and options at the head, every record, export times, message sizes,
sequence numbers, and a write that fails counted, not hidden."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.export.wire import Decoder, Message, split_stream

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo.pcap"
DEMO_FLOWS = 38  # flowprobe replay pcaps/demo.pcap: 26 IPv4, 12 IPv6


def flowprobe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probe", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def messages(path: Path) -> list[Message]:
    data = path.read_bytes()
    raw = split_stream(data)
    assert sum(len(m) for m in raw) == len(data), "the file is whole messages, nothing else"
    d = Decoder()
    return [d.decode(m) for m in raw]


def file_config(tmp_path: Path, out: Path, **writer: object) -> Path:
    cfg = json.loads((ROOT / "configs" / "ipfix-file.json").read_text())
    cfg["observationPoint"][0]["offlineFile"] = str(DEMO)
    cfg["exportingProcess"][0]["destination"][0]["fileWriter"] = {"file": f"file://{out}",
                                                                  **writer}
    cfg.pop("collectingProcess")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def test_templates_and_options_come_first_then_every_record(tmp_path: Path) -> None:
    out = tmp_path / "demo.ipfix"
    r = flowprobe("replay", str(DEMO), "--export", f"file:{out}", "-q")
    assert r.returncode == 0, r.stderr
    msgs = messages(out)
    first_data = next(i for i, m in enumerate(msgs) if m.data)
    head = msgs[:first_data]
    # Both layouts (IPv4 and IPv6 flows) are announced before any flow record, and the
    # exporting process's options record too.
    data_templates = [t for m in head for t in m.templates if not t[2]]
    assert {len([s for s in specs if s[0] in (8, 27)]) for _, specs, _ in data_templates} == {1}
    assert {ie for _, specs, _ in data_templates for ie, _ in specs} >= {8, 27}
    assert any(m.options for m in head)
    assert not any(m.templates for m in msgs[first_data:])  # nothing announced late
    assert not any(m.withdrawn for m in msgs)  # a file ends, it does not withdraw
    assert sum(len(m.data) for m in msgs) == DEMO_FLOWS
    # the final statistics close the file: every flow record and message before them
    (last,) = [rec for _, rec in msgs[-1].options]
    assert last[42] == DEMO_FLOWS and last[41] == len(msgs) - 1


def test_export_time_is_when_written_never_before_a_record_ends(tmp_path: Path) -> None:
    out = tmp_path / "demo.ipfix"
    assert flowprobe("replay", str(DEMO), "--export", f"file:{out}", "-q").returncode == 0
    msgs = messages(out)
    times = [m.header["export_time"] for m in msgs]
    assert times == sorted(times)
    for m in msgs:
        for _, rec in m.data:
            assert m.header["export_time"] * 1000 >= rec[153]  # flowEndMilliseconds
    # the head is written when the probe starts: the first packet's second (2023-11-14)
    assert times[0] == 1_700_000_003


def test_sequence_numbers_count_the_records_before_each_message(tmp_path: Path) -> None:
    out = tmp_path / "demo.ipfix"
    assert flowprobe("replay", str(DEMO), "--export", f"file:{out}", "-q").returncode == 0
    seen: dict[int, int] = {}
    for m in messages(out):
        domain = m.header["domain"]
        assert m.header["seq"] == seen.get(domain, 0)
        seen[domain] = seen.get(domain, 0) + len(m.data) + len(m.options)
    assert seen[1] == DEMO_FLOWS


def test_messages_are_as_large_as_configured(tmp_path: Path) -> None:
    out = tmp_path / "small.ipfix"
    r = flowprobe("run", "-c", str(file_config(tmp_path, out, maxMessageSize=300)))
    assert r.returncode == 0, r.stderr
    msgs = messages(out)
    sizes = [m.header["length"] for m in msgs]
    assert max(sizes) <= 300
    # data messages hold as many records as fit (the last of each template's run fewer)
    ipv4 = [len(m.data) for m in msgs if m.data and 8 in m.data[0][1]]
    assert max(ipv4) == (300 - 16 - 4) // 51  # 51-octet IPv4 records of configs/ipfix-file.json
    assert sum(len(m.data) for m in msgs) == DEMO_FLOWS
    # by default a file is written in the largest messages the length field allows
    big = tmp_path / "big.ipfix"
    assert flowprobe("run", "-c", str(file_config(tmp_path, big))).returncode == 0
    assert len(messages(big)) < len(msgs) and max(len(m.data) for m in messages(big)) == 26


def test_a_write_that_fails_is_counted_and_said(tmp_path: Path) -> None:
    r = flowprobe("replay", str(DEMO), "--export", "file:/dev/full", "-q")
    assert r.returncode == 0
    assert "cannot write /dev/full: No space left on device" in r.stderr
    assert f"{DEMO_FLOWS} flow records not sent (/dev/full: No space left on device)" in r.stderr


def test_bad_file_destinations_are_one_line_errors(tmp_path: Path) -> None:
    r = flowprobe("replay", str(DEMO), "--export", f"file:{tmp_path}/no/such/dir/x.ipfix")
    assert r.returncode == 2
    assert r.stderr.strip() == (f"export destination file:{tmp_path}/no/such/dir/x.ipfix: "
                                f"cannot write {tmp_path}/no/such/dir/x.ipfix: No such file or "
                                "directory")
    r = flowprobe("replay", str(DEMO), "--export", f"file:{tmp_path}/x.ipfix", "--version", "9")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert "an IPFIX File (RFC 5655) holds IPFIX messages" in r.stderr
    r = flowprobe("replay", str(DEMO), "--export", "file://elsewhere/x.ipfix")
    assert r.returncode == 2 and "names a file on host 'elsewhere'" in r.stderr
