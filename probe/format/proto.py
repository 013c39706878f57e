"""goflow2's binary format: one ``flowpb.FlowMessage`` per flow, varint-length-delimited.

``flow.proto`` is goflow2's ``pb/flow.proto`` as published (BSD-3, ``LICENSE.goflow2``);
``flow_pb2`` is what ``protoc --python_out`` makes of it (``tests/format/test_proto.py``
checks the two still agree). Messages are built and serialised by the protobuf library (its C
implementation, upb); only the length prefix goflow2 puts before each message
(``protodelim``) is written here.

A mapping file may declare fields of its own (``formatter.protobuf``: name, index, varint or
string/bytes, array); they join FlowMessage in a private descriptor pool, so a consumer that
compiled the same indices into its ``.proto`` reads them, and one that did not skips them as
unknown fields. Arrays are not packed, as goflow2 writes them.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from probe.collect.columns import HEX, IPV4, IPV6, NUMERIC, TOK, Column
from probe.collect.flows import FlowBatch, column_values
from probe.format import flow_pb2
from probe.format.batch import is_counters

FlowMessage = flow_pb2.FlowMessage
MESSAGE_FIELDS: dict[str, FieldDescriptor] = dict(FlowMessage.DESCRIPTOR.fields_by_name)
# Every bytes field of FlowMessage is an address (sampler, src/dst, next hops, MPLS, SRv6).
ADDRESS_FIELDS = frozenset(n for n, f in MESSAGE_FIELDS.items()
                           if f.type == FieldDescriptor.TYPE_BYTES)
MAC_FIELDS = frozenset({"src_mac", "dst_mac"})
_FDP = descriptor_pb2.FieldDescriptorProto
PROTO_TYPES = {"varint": _FDP.TYPE_UINT64, "string": _FDP.TYPE_BYTES, "bytes": _FDP.TYPE_BYTES}


def is_repeated(f: FieldDescriptor) -> bool:
    """protobuf 5.28 added ``is_repeated`` and 7 removed ``label``: either way."""
    flag = getattr(f, "is_repeated", None)
    return bool(flag) if flag is not None else f.label == FieldDescriptor.LABEL_REPEATED


@dataclass(frozen=True, slots=True)
class CustomField:
    """A field a mapping adds to FlowMessage (goflow2's ``formatter.protobuf`` entry)."""

    name: str
    index: int
    type: str  # "varint", "string" or "bytes"
    array: bool = False


@lru_cache(maxsize=16)
def message_class(custom: tuple[CustomField, ...] = ()) -> type[Message]:
    """FlowMessage, or FlowMessage with ``custom``'s fields added (a class per distinct set)."""
    if not custom:
        return FlowMessage
    fdp = descriptor_pb2.FileDescriptorProto.FromString(flow_pb2.DESCRIPTOR.serialized_pb)
    (msg,) = fdp.message_type
    for c in custom:
        f = msg.field.add(name=c.name, number=c.index, type=PROTO_TYPES[c.type],
                          label=_FDP.LABEL_REPEATED if c.array else _FDP.LABEL_OPTIONAL,
                          json_name=c.name)
        if c.array and c.type == "varint":
            f.options.packed = False
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("flowpb.FlowMessage"))


def _address(v: object) -> bytes:
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    text = str(v)
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except OSError:
        return bytes.fromhex(text)  # what the JSON writes for an address of odd length


def _mac(v: object) -> int:
    return v if isinstance(v, int) else int(str(v).replace(":", ""), 16)


def _bytes(v: object) -> bytes:
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    return str(v).encode()


def _int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"not an integer: {v!r}")
    return v


def _converter(f: FieldDescriptor, name: str) -> Callable[[object], object]:
    if name in ADDRESS_FIELDS:
        one: Callable[[object], object] = _address
    elif name in MAC_FIELDS:
        one = _mac
    elif f.type == FieldDescriptor.TYPE_ENUM:
        one = str
    elif f.type == FieldDescriptor.TYPE_BYTES:
        one = _bytes
    else:
        one = _int
    if is_repeated(f):
        return lambda v: [one(x) for x in v] if isinstance(v, list | tuple) else [one(v)]
    return one


_MAX = {FieldDescriptor.TYPE_UINT32: (1 << 32) - 1, FieldDescriptor.TYPE_UINT64: (1 << 64) - 1}


class Encoder:
    """Flow batches -> delimited FlowMessages, one per row.

    Each column FlowMessage (with the mapping's fields) has a field for becomes a list of
    ready values once (addresses as octets, a TOK column's distinct values converted once,
    numbers checked against their field's range as arrays); then each row is one message
    built and serialised by the protobuf library. Columns without a field are left out, and
    so are values a field cannot hold (a 64-bit number in a uint32 field, text where an
    address goes): counted in ``notes`` by field name, never an exception.
    """

    def __init__(self, custom: tuple[CustomField, ...] = ()) -> None:
        self.cls = message_class(custom)
        self.fields: dict[str, FieldDescriptor] = dict(self.cls.DESCRIPTOR.fields_by_name)
        self.plan = {name: _converter(f, name) for name, f in self.fields.items()}
        self.notes: Counter[str] = Counter()  # what was left out, by field

    def _miss(self, name: str, n: int = 1) -> None:
        self.notes[f"bin: {name} left out"] += n

    def _values(self, name: str, c: Column, n: int) -> list[object]:
        """Column ``c`` as the values of field ``name``, one per row (None: leave out)."""
        f = self.fields[name]
        if c.kind in NUMERIC and f.type in _MAX and not is_repeated(f):
            data = c.data
            bad = (data < 0) | (data > _MAX[f.type]) if data.dtype.kind == "i" else \
                data > _MAX[f.type]
            values: list[object] = data.tolist()
            if bad.any():
                for i in np.flatnonzero(bad).tolist():
                    values[i] = None
                self._miss(name, int(bad.sum()))
            return values
        if c.kind in (IPV4, IPV6, HEX) and f.type == FieldDescriptor.TYPE_BYTES \
                and not is_repeated(f):
            data = c.data.astype(">u4") if c.kind == IPV4 else np.ascontiguousarray(c.data)
            raw, width = data.tobytes(), data.itemsize * (1 if data.ndim == 1 else
                                                           data.shape[1])
            return [raw[i * width:(i + 1) * width] for i in range(n)]
        # TOK (and anything else): each distinct value converted once
        conv = self.plan[name]
        if c.kind == TOK:
            done: list[object] = []
            for v in c.values or ():
                try:
                    done.append(None if v is None else conv(v))
                except (TypeError, ValueError):
                    done.append(None)
                    self._miss(name)
            return [done[i] for i in c.data.tolist()]
        out: list[object] = []
        for v in column_values(c, False):
            try:
                out.append(conv(v))
            except (TypeError, ValueError):
                out.append(None)
                self._miss(name)
        return out

    def messages(self, b: FlowBatch) -> list[bytes]:
        """Every row of the batch as one delimited message."""
        n = b.n
        cols: list[tuple[str, list[object]]] = [
            (name, self._values(name, c, n)) for name, c in b.columns.items()
            if name in self.fields]
        context = b.columns.get("context")
        if context is not None and context.kind == TOK:  # enrichment, to declared fields
            for key in ("source_group", "destination_group"):
                if key in self.fields and key not in b.columns:
                    per = [v.get(key) if isinstance(v, dict) else None
                           for v in context.values or ()]
                    cols.append((key, [None if per[i] is None else str(per[i]).encode()
                                       for i in context.data.tolist()]))
        cls, out = self.cls, []
        for i in range(n):
            kwargs = {name: v[i] for name, v in cols if v[i] is not None}
            try:
                msg = cls(**kwargs)
            except (TypeError, ValueError):  # a repeated field's element: find which
                msg = cls()
                for k, v in kwargs.items():
                    try:
                        msg.MergeFrom(cls(**{k: v}))
                    except (TypeError, ValueError):
                        self._miss(k)
            body = msg.SerializeToString()
            out.append(varint(len(body)) + body)
        return out


class BinFormat:
    """Flow batches -> goflow2's binary format: delimited FlowMessages, concatenated in a file.

    sFlow counter records are not flows and FlowMessage has no fields for them: they are left
    out of this format and counted in ``notes`` (which ``FlowOutput.bind`` makes the
    collector's statistics), as the encoder counts what it leaves out.
    """

    def __init__(self, custom: tuple[CustomField, ...] = ()) -> None:
        self.encoder = Encoder(custom)

    @property
    def notes(self) -> Counter[str]:
        return self.encoder.notes

    @notes.setter
    def notes(self, counter: Counter[str]) -> None:
        self.encoder.notes = counter

    def payloads(self, b: FlowBatch) -> list[bytes]:
        """One message per flow of the batch (none for a counter batch)."""
        if is_counters(b):
            self.notes["bin: sFlow counter records not written"] += b.n
            return []
        return self.encoder.messages(b)

    def pieces(self, batches: list[FlowBatch]) -> Iterator[bytes]:
        """The messages of each batch, a batch at a time."""
        for b in batches:
            messages = self.payloads(b)
            if messages:
                yield b"".join(messages)

    def chunk(self, batches: list[FlowBatch]) -> bytes:
        return b"".join(self.pieces(batches))


def varint(n: int) -> bytes:
    """Base-128 varint, least significant group first (protobuf's encoding of a length)."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
