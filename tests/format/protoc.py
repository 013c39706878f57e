"""``protoc --decode`` as the independent reader of goflow2's binary format.

protoc decodes one message from stdin; a delimited stream (varint length, message, ...) is
what a ``repeated FlowMessage flows = 1`` field is on the wire once each length has the field's
tag (0x0a) before it, so a whole stream is decoded in one call as such a ``Batch``. Its text
output is read back into one dict per message: field name -> list of values (numbers as int,
enum values as names, bytes as bytes).
"""

from __future__ import annotations

import codecs
import subprocess
from pathlib import Path

from google.protobuf.internal.decoder import _DecodeVarint  # the library's own reader
from google.protobuf.internal.encoder import _VarintBytes

FORMAT_DIR = Path(__file__).resolve().parents[2] / "probe" / "format"
BATCH = 'syntax = "proto3";\npackage flowpb;\nimport "flow.proto";\n' \
    "message Batch { repeated FlowMessage flows = 1; }\n"


def split(stream: bytes) -> list[bytes]:
    """The messages of a varint-length-delimited stream."""
    out, pos = [], 0
    while pos < len(stream):
        n, pos = _DecodeVarint(stream, pos)
        out.append(stream[pos:pos + n])
        pos += n
    assert pos == len(stream)
    return out


def _value(text: str) -> object:
    if text.startswith('"'):
        return codecs.escape_decode(text[1:-1].encode("latin-1"))[0]
    try:
        return int(text)
    except ValueError:
        return text  # an enum value's name


def decode(stream: bytes, workdir: Path, proto: Path | None = None) -> list[dict[str, list]]:
    """Every message of a delimited stream as protoc reads it with ``proto`` (flow.proto by
    default, or a FlowMessage with more fields written to ``proto``)."""
    proto_dir = proto.parent if proto is not None else FORMAT_DIR
    (workdir / "batch.proto").write_text(BATCH)
    wrapped = b"".join(b"\x0a" + _VarintBytes(len(m)) + m for m in split(stream))
    r = subprocess.run(["protoc", "--decode", "flowpb.Batch", f"-I{workdir}",
                        f"-I{proto_dir}", "batch.proto"], input=wrapped, capture_output=True,
                       timeout=60, check=True)
    messages: list[dict[str, list]] = []
    for line in r.stdout.decode("latin-1").splitlines():
        line = line.strip()
        if line == "flows {":
            messages.append({})
        elif line and line != "}":
            name, _, value = line.partition(": ")
            messages[-1].setdefault(name, []).append(_value(value))
    return messages


def extended_proto(workdir: Path, lines: list[str]) -> Path:
    """flow.proto with more fields in FlowMessage (what a consumer of custom fields compiles)."""
    text = (FORMAT_DIR / "flow.proto").read_text()
    end = text.rindex("}")
    path = workdir / "custom" / "flow.proto"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text[:end] + "".join(f"  {x}\n" for x in lines) + text[end:])
    return path
