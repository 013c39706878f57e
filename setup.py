"""Build of the one compiled piece, the flow table's per-packet core (everything else is in
pyproject.toml). It needs only a C compiler and the Python headers: no numpy headers, since
the core reads numpy arrays through the buffer protocol."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("probe.cache._flowtable", ["probe/cache/_flowtable.c"],
                             extra_compile_args=["-O2"])])
