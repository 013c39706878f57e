"""Whatever JSON a user puts wherever in a config, the answer is a Config or UserError lines
with a path: never another exception (which the CLI would show as a traceback)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.config import load_data
from probe.errors import UserError
from tests.config.helpers import sample

BASE = sample("ipfix-udp.json")


def _slots(node: Any, route: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [route]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _slots(v, (*route, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _slots(v, (*route, i))
    return out


SLOTS = _slots(BASE)[1:]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from(["Flow cache", "All", "Export", "127.0.0.1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "ieName", "selectAll", "x", "flowprobe:seed", "cacheLayout"]),
        inner, max_size=3),
    max_leaves=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slot=st.sampled_from(SLOTS), value=JSON, drop=st.booleans())
def test_any_value_anywhere(slot: tuple[Any, ...], value: Any, drop: bool) -> None:
    doc = copy.deepcopy(BASE)
    parent = doc
    for step in slot[:-1]:
        parent = parent[step]
    if drop and isinstance(parent, dict):
        del parent[slot[-1]]
    else:
        parent[slot[-1]] = value
    try:
        load_data(doc, "fuzz.json")
    except UserError as exc:
        assert exc.problems
        for line in exc.problems:
            assert line.startswith("fuzz.json: /ipfix"), line
            assert "\n" not in line
            assert "validator failed" not in line, line
