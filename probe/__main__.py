"""``python -m probe`` is the ``flowprobe`` command."""

from probe.cli import entry

entry()
