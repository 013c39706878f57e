"""flowprobe: a flow meter and exporter built as the RFC 5470 pipeline.

Observation Point (``capture``) → Selection Process (``selection``) → Cache (``cache``) →
Exporting Process (``export``) → Collecting Process (``collect``). ``ie`` is the Information
Element registry, ``config`` the RFC 6728 configuration model every box reads.
"""

__version__ = "0.1.0"
