"""NATS subjects made from a flow's fields: one token per value, the stream's wildcard."""

from __future__ import annotations

import pytest

from probe.errors import UserError
from probe.transport.nats import Subject


def test_fields_become_single_tokens() -> None:
    s = Subject.parse("flows.{sampler_address}.{type}")
    assert s.fields == ("sampler_address", "type")
    assert s.wildcard == "flows.*.*"
    assert s.render({"sampler_address": "192.0.2.1", "type": "IPFIX"}, "") == \
        "flows.192_0_2_1.IPFIX"
    assert s.render({"sampler_address": "2001:db8::1"}, "") == "flows.2001:db8::1._"
    assert s.render({"sampler_address": "a b*c>d", "type": ""}, "") == "flows.a_b_c_d._"


def test_key_and_fixed_subjects() -> None:
    assert Subject.parse("flows.{key}").render({}, "10.0.0.1-6") == "flows.10_0_0_1-6"
    assert Subject.parse("flows").render({"type": "x"}, "") == "flows"
    assert Subject.parse("f.p{proto}").wildcard == "f.*"


@pytest.mark.parametrize("bad", ["flows.>", "flows..x", "flows.*", "a b", ""])
def test_not_a_subject(bad: str) -> None:
    with pytest.raises(UserError, match="not a subject"):
        Subject.parse(bad)
