"""The wire model: what an IPFIX, NetFlow v9 or NetFlow v5 message is made of, for both ends.

The Exporting Process (``probe.export``) builds messages from these types and the Collecting
Process (``probe.collect``) reads messages into them, so what one encodes the other decodes
through the same definitions (vmware go-ipfix keeps ``pkg/entities`` for the same reason):

- ``fields``: ``FieldSpec``, one field specifier of a Template (IE id, length, enterprise
  number, or a NetFlow v9 scope type);
- ``templates``: ``Template`` and a Template's record on the wire (Template Sets, withdrawals);
- ``messages``: message headers, set headers and set ids of the three protocols, and the fixed
  NetFlow v5 record;
- ``domain``: ``DomainState``, what one observation domain of one transport session keeps
  (sequence numbers, templates announced, what its options records say).

Only the IE registry sits below it; encoding columns and decoding values are the exporter's and
the collector's own jobs. IPFIX files (RFC 5655) and biflows (RFC 5103) build on these types.
"""

from probe.wire.domain import DomainState
from probe.wire.fields import VARIABLE, FieldSpec, field_spec
from probe.wire.templates import FIRST_TEMPLATE_ID, Template

__all__ = ["FIRST_TEMPLATE_ID", "VARIABLE", "DomainState", "FieldSpec", "Template", "field_spec"]
