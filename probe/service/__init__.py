"""Running as a service on a sniffing host: signals and reload, pid file, privilege drop,
journald-friendly logging, the control socket behind ``flowprobe stats`` and Prometheus metrics.

Kept apart from the pipeline so that ``flowprobe replay`` and the tests never pay for it.
"""
