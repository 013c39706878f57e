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
    assert ie.METERED == ie.METERED_KEYS | ie.METERED_NONKEYS


def test_reduced_size_lengths() -> None:
    octets = ie.by_name("octetDeltaCount")
    assert octets is not None and octets.allowed_lengths() == (1, 2, 3, 4, 5, 6, 7, 8)
    v4 = ie.by_name("sourceIPv4Address")
    assert v4 is not None and v4.allowed_lengths() == (4,)  # addresses are never reduced
