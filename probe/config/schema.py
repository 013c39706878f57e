"""The YANG data model flowprobe validates against, built once per process.

The modules are the vendored RFC 6728 ones plus ``flowprobe.yang``; ``yang-library.json`` says
which features are enabled: only what the probe implements, so a config asking for SCTP
collectors fails validation instead of being ignored.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from yangson import DataModel
from yangson.schemanode import InternalNode

# Package data (``probe/yang``): an installed wheel carries the modules, so validating a config
# needs no source tree. Packages are installed as directories, so this is a real path.
YANG_DIR = Path(str(files("probe") / "yang"))
YANG_LIBRARY = YANG_DIR / "yang-library.json"

IPFIX_MODULE = "ietf-ipfix-psamp"
FLOWPROBE_MODULE = "flowprobe"
ROOT_MEMBER = f"{IPFIX_MODULE}:ipfix"

# RFC 6728 features flowprobe implements (the "feature" list in yang-library.json).
FEATURES = (
    "exporter", "collector", "meter",
    "psampSampCountBased", "psampSampTimeBased", "psampSampRandOutOfN", "psampSampUniProb",
    "psampFilterMatch", "psampFilterHash",
    "immediateCache", "timeoutCache", "naturalCache", "permanentCache",
    "udpTransport", "tcpTransport", "fileReader", "fileWriter",
)


@cache
def data_model() -> DataModel:
    """Parsing the modules takes most of a second: do it once per process."""
    if not YANG_LIBRARY.is_file():
        raise RuntimeError(f"the YANG modules are missing ({YANG_LIBRARY} not found): the "
                           "package is incomplete; reinstall flowprobe")
    return DataModel.from_file(str(YANG_LIBRARY), [str(YANG_DIR)])


def ipfix_node() -> InternalNode:
    node = data_model().schema.get_data_child("ipfix", IPFIX_MODULE)
    assert isinstance(node, InternalNode)
    return node
