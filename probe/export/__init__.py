"""Exporting Process: IPFIX, NetFlow v9 and v5 encoders over UDP and TCP.

The pipeline opens one runtime per configured Exporting Process and hands it RecordBatches;
``tick`` drives the timers (template refresh, options records, TCP reconnects, flushing partly
filled messages) and ``close`` sends everything still pending.
"""

from probe.export.process import ExportingProcessRuntime, open_exporting_process

__all__ = ["ExportingProcessRuntime", "open_exporting_process"]
