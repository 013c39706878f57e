"""goflow2's mapping file (``-mapping mapping.yaml``): what to print, how, and extra fields.

```yaml
formatter:
  fields: [type, src_addr, flow_direction, icmp_name]   # JSON: these, in this order
  key: [sampler_address]                                # the message key (NATS subject {key})
  rename: {src_mac: src_macaddr}                        # JSON names
  render: {time_received_ns: datetimenano}              # how a value is written
  protobuf:                                             # fields added to FlowMessage
    - {name: flow_direction, index: 42, type: varint}
ipfix:
  mapping:
    - {field: 61, destination: flow_direction}          # IE 61 into that field
    - {field: 137, pen: 2636, penprovided: true, destination: juniper_properties}
netflowv9:
  mapping:
    - {field: 34, destination: sampling_rate, endian: little}
sflow:
  mapping:
    - {layer: udp, offset: 48, length: 16, destination: csum}   # bits of the sampled header
  ports:
    - {proto: udp, dir: dst, port: 6081, parser: geneve}         # a tunnel for encap entries
```

Every name the ``formatter`` refers to (``fields``, ``key``, ``rename``, ``render``) must be a
field a flow can have: one of FlowMessage's, one ``formatter.protobuf`` declares, a mapping
destination, the virtual ``icmp_name``, ``context`` (enrichment), an IANA Information
Element name (what records carry for IEs goflow2 has no name for) or a name of an sFlow
counter record. Anything else is a typo, reported in one line (``UserError``: exit 2), as is
a renderer, type or layer that does not exist and a protobuf index that collides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from probe.errors import UserError
from probe.format.proto import ADDRESS_FIELDS, MESSAGE_FIELDS, PROTO_TYPES, CustomField
from probe.ie import by_id, by_name

RENDERERS = frozenset({"none", "ip", "mac", "etype", "proto", "type", "network", "datetime",
                       "datetimenano", "string"})
VIRTUAL = frozenset({"icmp_name"})
# Names records carry besides FlowMessage's and IE names: enrichment and sFlow counters.
EXTRA = frozenset({"context", "sample_type", "sub_agent_id", "sample_sequence_num",
                   "source_id_type", "source_id_index", "if_counters", "ethernet_counters",
                   "processor"})
# The layer names of an sflow entry, goflow2's (its documentation's and its code's): the
# sampled header's start, the Ethernet header, the IP header, the upper-layer header, the
# TCP/UDP payload. What each matches is in ``probe.format.packet``.
FRAME_LAYERS = frozenset({"0", "ethernet", "2"})
SFLOW_LAYERS = FRAME_LAYERS | {"3", "ip", "ipv4", "ipv6", "4", "tcp", "udp", "icmp", "icmp6",
                               "icmpv6", "ipv6-icmp", "7", "payload"}
MAX_NUMBER_BITS = 64  # a longer sflow field is octets (an address, a string or bytes field)
# goflow2's parsers a ``sflow.ports`` entry may name, and those flowprobe's capture decoder
# opens as tunnels for ``encap`` entries: (parser, transport, port) -> its tunnel switch.
PORT_PARSERS = frozenset({"ethernet", "dot1q", "mpls", "ipv4", "ipv6", "ipv6-route",
                          "ipv6-frag", "tcp", "udp", "icmp", "ipv6-icmp", "gre", "teredo-dst",
                          "geneve"})
OPENED_PORTS = {("geneve", "udp", 6081): "geneve"}


@dataclass(frozen=True, slots=True)
class FieldMap:
    """An ``ipfix``/``netflowv9`` entry: Template field (IE id, enterprise) -> destination."""

    field: int
    pen: int  # 0: an IANA IE
    destination: str
    little_endian: bool

    @property
    def raw_name(self) -> str:
        """The name a decoded record (``Record.raw``) keeps this field under."""
        ie = by_id(self.field) if self.pen == 0 else None
        if ie is not None:
            return ie.name
        return f"ie{self.field}" if self.pen == 0 else f"{self.pen}.{self.field}"


@dataclass(frozen=True, slots=True)
class LayerMap:
    """An ``sflow`` entry: ``length`` bits at ``offset`` bits from a layer's start."""

    layer: str
    offset: int
    length: int
    destination: str
    little_endian: bool
    encap: bool


@dataclass(frozen=True, slots=True)
class PortParser:
    """An ``sflow.ports`` entry: goflow2 decodes what follows this port with ``parser``."""

    proto: str  # udp or tcp
    direction: str  # src, dst or both
    port: int
    parser: str

    @property
    def tunnel(self) -> str | None:
        """The capture decoder's tunnel switch that opens the same packets, if there is one
        (it opens a tunnel by its destination port)."""
        if self.direction == "src":
            return None
        return OPENED_PORTS.get((self.parser, self.proto, self.port))


@dataclass(frozen=True, slots=True)
class Mapping:
    fields: tuple[str, ...] = ()  # () = every field a flow has, in its order
    key: tuple[str, ...] = ()
    rename: dict[str, str] = field(default_factory=dict)
    render: dict[str, str] = field(default_factory=dict)
    protobuf: tuple[CustomField, ...] = ()
    ipfix: tuple[FieldMap, ...] = ()
    netflowv9: tuple[FieldMap, ...] = ()
    sflow: tuple[LayerMap, ...] = ()
    sflow_ports: tuple[PortParser, ...] = ()  # ``sflow.ports``: parsers for what is inside

    def destinations(self) -> frozenset[str]:
        return frozenset(m.destination for m in (*self.ipfix, *self.netflowv9, *self.sflow))

    def custom_types(self) -> dict[str, CustomField]:
        return {c.name: c for c in self.protobuf}


NO_MAPPING = Mapping()


class _Problem(Exception):
    pass


def _dict(v: object, where: str) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _Problem(f"{where}: expected a mapping, got {type(v).__name__}")
    return v


def _list(v: object, where: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _Problem(f"{where}: expected a list, got {type(v).__name__}")
    return v


def _keys(d: dict, allowed: set[str], where: str) -> None:
    for k in d:
        if k not in allowed:
            raise _Problem(f"{where}: unknown key {k!r} (known: {', '.join(sorted(allowed))})")


def _int(v: object, where: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _Problem(f"{where}: {v!r} is not a whole number from {lo} to {hi}")
    return v


def _name(v: object, where: str) -> str:
    if not isinstance(v, str) or not v:
        raise _Problem(f"{where}: {v!r} is not a field name")
    return v


def _endian(d: dict, where: str) -> bool:
    # goflow2's code reads ``endianness``; its documentation writes ``endian``: both are read.
    v = d.get("endianness", d.get("endian", "big"))
    if v not in ("big", "little"):
        raise _Problem(f"{where}: endianness {v!r} is neither big nor little")
    return v == "little"


def _protobuf(items: list) -> tuple[CustomField, ...]:
    out: list[CustomField] = []
    names: set[str] = set()
    indices = {f.number: n for n, f in MESSAGE_FIELDS.items()}
    for i, item in enumerate(items):
        where = f"formatter.protobuf[{i}]"
        d = _dict(item, where)
        _keys(d, {"name", "index", "type", "array"}, where)
        name = _name(d.get("name"), f"{where}.name")
        index = _int(d.get("index"), f"{where}.index", 1, 536_870_911)
        kind = d.get("type", "varint")
        if kind not in PROTO_TYPES:
            raise _Problem(f"{where}.type: {kind!r} is not varint, string or bytes")
        if name in MESSAGE_FIELDS or name in names:
            raise _Problem(f"{where}.name: {name!r} is already a field of FlowMessage")
        if index in indices or 19000 <= index <= 19999:
            taken = indices.get(index, "protobuf's reserved range 19000-19999")
            raise _Problem(f"{where}.index: {index} is taken by {taken}")
        names.add(name)
        indices[index] = name
        out.append(CustomField(name, index, kind, bool(d.get("array", False))))
    return tuple(out)


def _field_maps(items: list, section: str, pen_allowed: bool) -> tuple[FieldMap, ...]:
    out = []
    for i, item in enumerate(items):
        where = f"{section}.mapping[{i}]"
        d = _dict(item, where)
        _keys(d, {"field", "pen", "penprovided", "destination", "endian", "endianness"}, where)
        fid = _int(d.get("field"), f"{where}.field", 0, 0x7FFF if pen_allowed else 0xFFFF)
        pen = _int(d.get("pen", 0), f"{where}.pen", 0, 0xFFFFFFFF)
        if pen and not pen_allowed:
            raise _Problem(f"{where}.pen: NetFlow v9 fields have no enterprise number")
        if d.get("penprovided") and not pen:
            raise _Problem(f"{where}: penprovided without a pen")
        out.append(FieldMap(fid, pen, _name(d.get("destination"), f"{where}.destination"),
                            _endian(d, where)))
    return tuple(out)


def _layer_maps(items: list) -> tuple[LayerMap, ...]:
    out = []
    for i, item in enumerate(items):
        where = f"sflow.mapping[{i}]"
        d = _dict(item, where)
        _keys(d, {"layer", "offset", "length", "destination", "endian", "endianness", "encap"},
              where)
        layer = str(d.get("layer", "")).lower()
        if layer not in SFLOW_LAYERS:
            raise _Problem(f"{where}.layer: {d.get('layer')!r} is not one of "
                           f"{', '.join(sorted(SFLOW_LAYERS))}")
        encap = d.get("encap", False)
        if not isinstance(encap, bool):
            raise _Problem(f"{where}.encap: {encap!r} is neither true nor false")
        if encap and layer in FRAME_LAYERS:
            raise _Problem(f"{where}.encap: layer {layer} is the sampled frame's own; encap "
                           "entries read the IP, upper layer or payload inside a tunnel")
        offset = _int(d.get("offset", 0), f"{where}.offset", 0, 65535 * 8)
        length = _int(d.get("length"), f"{where}.length", 1, 65535 * 8)
        if length > MAX_NUMBER_BITS and (offset % 8 or length % 8):
            raise _Problem(f"{where}: a field longer than {MAX_NUMBER_BITS} bits is octets: "
                           "its offset and length must be multiples of 8")
        out.append(LayerMap(layer, offset, length,
                            _name(d.get("destination"), f"{where}.destination"),
                            _endian(d, where), encap))
    return tuple(out)


def _ports(items: list) -> tuple[PortParser, ...]:
    out = []
    for i, item in enumerate(items):
        where = f"sflow.ports[{i}]"
        d = _dict(item, where)
        _keys(d, {"proto", "dir", "port", "parser"}, where)
        proto, direction, parser = d.get("proto"), d.get("dir", "both"), d.get("parser")
        if proto not in ("udp", "tcp"):
            raise _Problem(f"{where}.proto: {proto!r} is neither udp nor tcp")
        if direction not in ("src", "dst", "both"):
            raise _Problem(f"{where}.dir: {direction!r} is not src, dst or both")
        if parser not in PORT_PARSERS:
            raise _Problem(f"{where}.parser: {parser!r} is not one of goflow2's parsers "
                           f"({', '.join(sorted(PORT_PARSERS))})")
        out.append(PortParser(proto, direction, _int(d.get("port"), f"{where}.port", 0, 65535),
                              parser))
    return tuple(out)


def known_field(m: Mapping, name: str) -> bool:
    """Whether a flow can have a field of this name (with this mapping)."""
    return _known(m, name)


def _known(m: Mapping, name: str) -> bool:
    return (name in MESSAGE_FIELDS or name in VIRTUAL or name in EXTRA
            or name in m.custom_types() or name in m.destinations() or by_name(name) is not None)


def _check_names(m: Mapping) -> None:
    refs = [("formatter.fields", n) for n in m.fields] + \
        [("formatter.key", n) for n in m.key] + \
        [("formatter.rename", n) for n in m.rename] + \
        [("formatter.render", n) for n in m.render]
    for where, name in refs:
        if not _known(m, name):
            raise _Problem(f"{where}: no field named {name!r} (not in flow.proto, "
                           "formatter.protobuf, a mapping destination or the IANA registry)")
    for name, renderer in m.render.items():
        if renderer not in RENDERERS:
            raise _Problem(f"formatter.render.{name}: {renderer!r} is not a renderer "
                           f"({', '.join(sorted(RENDERERS))})")
    for name, new in m.rename.items():
        if not isinstance(new, str) or not new:
            raise _Problem(f"formatter.rename.{name}: {new!r} is not a field name")


def parse(doc: object) -> Mapping:
    """A mapping document (as YAML loads it) -> Mapping; ``_Problem`` names what is wrong."""
    top = _dict(doc, "the file")
    _keys(top, {"formatter", "ipfix", "netflowv9", "sflow"}, "the file")
    fmt = _dict(top.get("formatter"), "formatter")
    _keys(fmt, {"fields", "key", "rename", "render", "protobuf"}, "formatter")
    ipfix = _dict(top.get("ipfix"), "ipfix")
    v9 = _dict(top.get("netflowv9"), "netflowv9")
    sflow = _dict(top.get("sflow"), "sflow")
    _keys(ipfix, {"mapping"}, "ipfix")
    _keys(v9, {"mapping"}, "netflowv9")
    _keys(sflow, {"mapping", "ports"}, "sflow")
    m = Mapping(
        fields=tuple(_name(n, "formatter.fields") for n in _list(fmt.get("fields"),
                                                                  "formatter.fields")),
        key=tuple(_name(n, "formatter.key") for n in _list(fmt.get("key"), "formatter.key")),
        rename={str(k): v for k, v in _dict(fmt.get("rename"), "formatter.rename").items()},
        render={str(k): v for k, v in _dict(fmt.get("render"), "formatter.render").items()},
        protobuf=_protobuf(_list(fmt.get("protobuf"), "formatter.protobuf")),
        ipfix=_field_maps(_list(ipfix.get("mapping"), "ipfix.mapping"), "ipfix", True),
        netflowv9=_field_maps(_list(v9.get("mapping"), "netflowv9.mapping"), "netflowv9",
                              False),
        sflow=_layer_maps(_list(sflow.get("mapping"), "sflow.mapping")),
        sflow_ports=_ports(_list(sflow.get("ports"), "sflow.ports")),
    )
    _check_names(m)
    _check_octets(m)
    return m


def port_notes(m: Mapping) -> list[str]:
    """What the ``sflow.ports`` entries ask that flowprobe does not do, one line each: only
    said when an ``encap`` entry would read inside such a tunnel (else ports change nothing
    in what flowprobe writes)."""
    if not any(e.encap for e in m.sflow):
        return []
    return [f"sflow.ports[{i}]: {p.parser} on {p.proto} {p.direction} port {p.port} is not "
            "opened: encap entries read inside GRE, IP in IP, IPv6 in IP and Geneve on "
            "udp dst port 6081 only" for i, p in enumerate(m.sflow_ports) if p.tunnel is None]


def _check_octets(m: Mapping) -> None:
    """An sflow field longer than a number goes where octets go: an address field of
    FlowMessage or a ``string``/``bytes`` field the formatter declares."""
    custom = m.custom_types()
    for i, e in enumerate(m.sflow):
        if e.length <= MAX_NUMBER_BITS or e.destination in ADDRESS_FIELDS:
            continue
        if e.destination not in custom or custom[e.destination].type == "varint":
            raise _Problem(f"sflow.mapping[{i}]: {e.length} bits do not make a number: "
                           f"declare {e.destination!r} in formatter.protobuf as string or "
                           "bytes")


def load(path: str | Path) -> Mapping:
    """Read and check a mapping file; every problem is one line naming the file (exit 2)."""
    import yaml  # only when a mapping is given

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: {where}not valid YAML: {problem}") from None
    try:
        return parse(doc if doc is not None else {})
    except _Problem as exc:
        raise UserError(f"{path}: {exc}") from None
