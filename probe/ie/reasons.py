"""flowEndReason values (RFC 7012 §5.11.3, IANA 'IPFIX Flow End Reasons') as people read them.

Here, not beside the cache, so the command-line summaries can name reasons without loading the
metering code.
"""

FLOW_END_REASONS: dict[int, str] = {
    1: "idle timeout", 2: "active timeout", 3: "end of flow", 4: "forced end",
    5: "lack of resources",
}
