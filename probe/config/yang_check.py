"""Validate an RFC 7951 document with yangson and say what is wrong in the project's words.

The normalising walk already caught unknown members and badly typed values; what is left for
yangson is structure and references: mandatory leaves, list keys and their uniqueness,
min-elements, ``when`` conditions and leafrefs (``scope=all`` checks that every leafref names
an existing entry). yangson stops at its first problem, so this reports at most one.
"""

from __future__ import annotations

from typing import Any

from yangson.enumerations import ContentType, ValidationScope
from yangson.exceptions import (
    RawMemberError,
    RawTypeError,
    SchemaError,
    SemanticError,
    YangsonException,
    YangTypeError,
)
from yangson.instance import InstanceNode

from probe.config.paths import ROOT, local, route_to_path
from probe.config.schema import data_model

# Why a member may be present in general but not where it is (YANG "when" conditions).
_NOT_HERE = {
    "isFlowKey": "an immediateCache has no flow keys, nor has a reverse IE "
                 "(ieEnterpriseNumber 29305)",
    "activeTimeout": "only timeoutCache and naturalCache have it",
    "idleTimeout": "only timeoutCache and naturalCache have it",
    "exportInterval": "only permanentCache has it",
}


def validate(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (path, problem) pairs; empty when yangson accepts the document."""
    dm = data_model()
    try:
        inst = dm.from_raw(doc)
        inst.validate(ctype=ContentType.config, scope=ValidationScope.all)
    except (SchemaError, SemanticError, YangTypeError) as exc:
        return [_translate(doc, exc.instance, exc.tag, exc.message)]
    except (RawMemberError, RawTypeError) as exc:
        return [(_raw_path(exc.path), str(exc).split("} ", 1)[-1].strip("{}"))]
    except YangsonException as exc:
        return [(ROOT, f"invalid: {exc}")]
    except Exception as exc:  # a validator bug must not become a traceback
        return [(ROOT, f"the YANG validator failed on this document ({type(exc).__name__}: "
                       f"{exc}); please report it")]
    return []


def _raw_path(jptr: str) -> str:
    parts = [p for p in jptr.split("/") if p]
    out = []
    for p in parts[1:]:
        name, eq, key = p.partition("=")
        out.append(f"{local(name)}[name='{key}']" if eq else local(name))
    return "/".join([ROOT, *out])


def _translate(doc: dict[str, Any], inst: InstanceNode, tag: str,
               message: str | None) -> tuple[str, str]:
    path = route_to_path(doc, inst.path)
    tag = tag.removeprefix("config ")
    msg = message or ""
    if tag == "instance-required":
        value = inst.value
        target = local(str(inst.path[-2] if isinstance(inst.path[-1], int) else inst.path[-1]))
        return path, f"no {target} named '{value}'"
    if tag == "missing-data":
        what = msg.removeprefix("expected ")
        if what.startswith("one of"):
            return path, f"needs {what}"
        return path, f"missing mandatory {what}"
    if tag == "member-not-allowed":
        why = _NOT_HERE.get(local(msg))
        return path, f"'{local(msg)}' is not allowed here" + (f" ({why})" if why else "")
    if tag == "non-unique-key":
        return path, f"two entries named {msg}"
    if tag == "repeated-leaf-list-value":
        return path, "a value appears twice"
    if tag == "too-few-elements":
        return path, "needs at least one entry"
    if tag == "too-many-elements":
        return path, "has too many entries"
    if tag == "invalid-type":
        return path, f"{inst.value!s} is invalid: {msg}"
    return path, f"{tag}{': ' + msg if msg else ''}"
