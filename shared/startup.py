"""Cold start: load the libraries and build the runtime without cyclic garbage collections.

Loading a function imports pydantic, redis-py, pika, prometheus-client and the gateway's own modules:
hundreds of thousands of new objects, so CPython's cyclic collector runs again and again while they
load (about 170 collections per function start, three of them over everything loaded so far) and
frees nothing, because modules, classes and the runtime live as long as the process. Pausing it
while a function loads, then freezing what was loaded (``gc.freeze``: later collections skip those
objects instead of rescanning them on every full pass), removes that work from every cold start.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def loading() -> Iterator[None]:
    """Pause the cyclic collector while the block runs; then resume it and freeze what exists."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.freeze()
