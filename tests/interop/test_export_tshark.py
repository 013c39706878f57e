"""tshark, the reference decoder, reads our IPFIX, NetFlow v9 and v5 without a single expert
warning (sequence numbers, lengths, templates) and decodes every record as the cache expired it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.export.expect import batch_rows, tshark_row
from tests.export.flows import batch
from tests.export.harness import destination, run
from tests.export.peers import dumpcap, have, tshark_expert, tshark_flows, udp_sink

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not have("dumpcap", "tshark"), reason="needs dumpcap and tshark")]


def _batches(version: int):
    # Two observation domains, IPv4 and IPv6, several export calls: per-domain sequence
    # numbers, one template per (domain, IP version), partial messages flushed at close.
    out = []
    for i, (n, ipv, dom) in enumerate(((250, 4, 1), (120, 6, 1), (75, 4, 7), (40, 4, 1),
                                       (33, 6, 7))):
        out.append(batch(n, ipv, domain=dom, seed=10 + i, offset_us=i * 1_000))
    return out


@pytest.mark.parametrize("version", [10, 9, 5])
def test_tshark_decodes_every_record_without_warnings(tmp_path: Path, version: int) -> None:
    batches = _batches(version)
    with udp_sink() as sink:
        port = sink.getsockname()[1]
        cap = tmp_path / "export.pcap"
        dest = destination(port=port, version=version)
        with dumpcap(cap, f"udp port {port}"):
            rt = run([dest], batches, step_us=700_000)
    stats = rt.stats()[dest.name]
    decode_as = f"udp.port=={port},cflow"

    expert = tshark_expert(cap, decode_as)
    assert "Warns" not in expert and "Errors" not in expert, expert

    v5 = version == 5
    expected = sorted(r for b in batches if not (v5 and b.ip_version == 6)
                      for r in batch_rows(b, v5))
    flows = [f for f in tshark_flows(cap, decode_as)
             if "cflow.srcaddr" in f or "cflow.srcaddrv6" in f]
    assert sorted(tshark_row(f) for f in flows) == expected
    assert stats["records"] == len(expected)
    assert stats["dropped"] == 0 and stats["failures"] == 0
    if v5:
        assert stats["not_exportable"] == sum(len(b) for b in batches if b.ip_version == 6)
    for f in flows:  # no message beyond one Ethernet MTU
        assert int(f.get("hdr.cflow.len", 0)) <= 1472
