"""``python -m bench``: measure the gateway on this machine against real Redis and RabbitMQ.

A benchmark, not a test: it reports numbers and ratios against the targets of issue 7 and never
fails on speed. See ``docs/benchmarks.md``.
"""
