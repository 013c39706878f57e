"""The committed IE table is what the generator makes of the IANA registry snapshot, and it
says what a user configuring templates relies on (ids, types, reduced-size lengths)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from probe import ie
from tests.helpers import SHARED

REPO = Path(__file__).resolve().parents[2]
XML = SHARED / "iana" / "ipfix.xml"


@pytest.mark.skipif(not XML.exists(), reason=f"IANA registry snapshot {XML} not present")
def test_committed_table_is_the_generated_one(tmp_path: Path) -> None:
    out = tmp_path / "iana.py"
    with out.open("w") as f:
        subprocess.run([sys.executable, "-m", "tools.gen_iana_registry", str(XML)], stdout=f,
                       cwd=REPO, check=True, timeout=60)
    committed = (REPO / "probe" / "ie" / "iana.py").read_text()
    assert out.read_text() == committed, "probe/ie/iana.py differs: re-run the generator"


def test_well_known_elements() -> None:
    octets = ie.by_name("octetDeltaCount")
    assert octets is not None
    assert (octets.id, octets.data_type, octets.length) == (1, "unsigned64", 8)
    assert ie.by_id(1) == octets
    v6 = ie.by_name("sourceIPv6Address")
    assert v6 is not None
    assert (v6.id, v6.data_type, v6.length) == (27, "ipv6Address", 16)
    assert ie.by_id(27) == v6
    assert ie.by_name("noSuchElement") is None


def test_every_metered_element_is_in_the_registry() -> None:
    unknown = sorted(n for n in ie.METERED if ie.by_name(n) is None)
    assert unknown == []
    assert ie.METERED == ie.METERED_KEYS | ie.METERED_NONKEYS | ie.PACKET_REPORT
    assert ie.PACKET_SECTIONS < ie.PACKET_REPORT


def test_reduced_size_lengths() -> None:
    octets = ie.by_name("octetDeltaCount")
    assert octets is not None and octets.allowed_lengths() == (1, 2, 3, 4, 5, 6, 7, 8)
    v4 = ie.by_name("sourceIPv4Address")
    assert v4 is not None and v4.allowed_lengths() == (4,)  # addresses are never reduced


def test_mpls_label_sections_are_three_octets() -> None:
    """IANA 70-79: "The size of this Information Element is 3 octets" (label, Exp, S)."""
    for i, name in enumerate(ie.MPLS_LABEL_SECTIONS):
        el = ie.by_name(name)
        assert el is not None and (el.id, el.data_type, el.length) == (70 + i, "octetArray", 3)
        assert el.allowed_lengths() == (3,)
    assert ie.by_name("mplsLabelStackSection") is not None
    assert ie.by_name("mplsLabelStackSection").length is None  # 316: variable, not metered


def test_enterprise_elements_by_name_and_by_pen_and_id() -> None:
    """The tunnel IEs IANA lacks are ntop's (PEN 35632), with nProbe's ids: they do not
    collide with IANA ids of the same number."""
    outer = ie.by_name("UNTUNNELED_IPV4_SRC_ADDR")
    assert outer is not None and (outer.pen, outer.id, outer.length) == (35632, 114, 4)
    assert ie.by_id(114, 35632) is outer and ie.by_id(114) is not outer
    assert ie.by_id(396, 35632).data_type == "ipv6Address"  # type: ignore[union-attr]
    assert ie.by_id(106, 35632).name == "UPSTREAM_TUNNEL_ID"  # type: ignore[union-attr]
    assert ie.by_id(114, 9) is None
    assert {ie.by_name(n).pen for n in ie.TUNNEL_ELEMENTS} == {0, 35632}  # type: ignore[union-attr]
    assert ie.TUNNEL_ELEMENTS | set(ie.MPLS_LABEL_SECTIONS) <= ie.METERED_KEYS
