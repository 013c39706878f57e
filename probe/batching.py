"""How many packets a capture source reads and the pipeline meters per call.

Its own module so the command line can show the default without importing numpy and the
pipeline: ``flowprobe --help`` and every sub-command's parser stay cheap to build.
"""

DEFAULT_BATCH_SIZE = 65536
