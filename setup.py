"""Build of the two compiled pieces, the flow table's per-packet core and the collector's JSON
lines renderer (everything else is in pyproject.toml). They need only a C compiler and the
Python headers: no numpy headers, since both read numpy arrays through the buffer protocol."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("probe.cache._flowtable", ["probe/cache/_flowtable.c"],
                             extra_compile_args=["-O2"]),
                   # the collector's JSON lines from columns (probe/collect/flows.py)
                   Extension("probe.collect._jsonl", ["probe/collect/_jsonl.c"],
                             extra_compile_args=["-O2"])])
