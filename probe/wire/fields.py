"""Field specifiers (RFC 7011 §3.2, RFC 3954 §5.2): which IE a Template field holds, and how long.

A ``FieldSpec`` is fixed by its id, length, enterprise number and whether it is a NetFlow v9
scope field; its name and abstract data type are looked up once, when it is made, from the IE
registry (unknown IEs keep ``ie<id>`` / ``<pen>.<id>`` as name and no type). The exporter makes
them from its cache layouts; the collector from the Templates it receives, whose lengths are
untrusted, so nothing here raises on a length the IE's type cannot have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from probe.ie import InformationElement, by_id

VARIABLE = 65535  # RFC 7011 §7: a field length of 65535 means variable length

# NetFlow v9 Options Template scope field types (RFC 3954 §6.1): not IE ids.
V9_SCOPE_NAMES = {1: "scopeSystem", 2: "scopeInterface", 3: "scopeLineCard",
                  4: "scopeCache", 5: "scopeTemplate"}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One Template field specifier: IE id, declared length, enterprise number (0 = IANA)."""

    ie_id: int
    length: int  # VARIABLE for variable-length
    enterprise: int = 0
    v9_scope: bool = False  # a NetFlow v9 options scope field: ``ie_id`` is a scope type
    name: str = field(init=False, compare=False)
    data_type: str = field(init=False, compare=False)  # "" when the IE is unknown (or a scope)

    def __post_init__(self) -> None:
        ie = None if self.v9_scope else by_id(self.ie_id, self.enterprise)
        if self.v9_scope:
            name = V9_SCOPE_NAMES.get(self.ie_id, f"scope{self.ie_id}")
        elif ie is None:
            name = f"ie{self.ie_id}" if self.enterprise == 0 else f"{self.enterprise}.{self.ie_id}"
        else:
            name = ie.name
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "data_type", ie.data_type if ie is not None else "")

    @property
    def ie(self) -> InformationElement:
        """The IE this field holds (what an encoder needs): IANA's or one of the enterprise
        IEs flowprobe knows (``probe.ie.enterprise``); KeyError if not known."""
        ie = None if self.v9_scope else by_id(self.ie_id, self.enterprise)
        if ie is None:
            raise KeyError(f"IE {self.ie_id} (enterprise {self.enterprise}) is not known")
        return ie


@lru_cache(maxsize=65536)
def field_spec(ie_id: int, length: int, enterprise: int = 0, v9_scope: bool = False
               ) -> FieldSpec:
    """The interned FieldSpec: Templates that repeat a field share one object.

    The collector makes one per field of every Template it receives; the cache is bounded, so
    a flood of distinct specifiers cannot grow it without limit.
    """
    return FieldSpec(ie_id, length, enterprise, v9_scope)
