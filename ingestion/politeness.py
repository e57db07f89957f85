"""Be polite to the sites we read: at most a few fetches per host at once, across workers.

Each host has LIBRARIAN_FETCH_PER_HOST numbered slots in the shared cache. A slot
is taken with `cache.add` (atomic on every backend, unlike incr/decr on the
database cache) and expires on its own, so a worker that dies holding one
cannot block the host for longer than the TTL.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)
_POLL_S = (0.05, 0.25)


def _slot_key(host: str, index: int) -> str:
    return f"librarian:fetch-slot:{host.lower()}:{index}"


@contextmanager
def host_slot(
    host: str,
    *,
    limit: int | None = None,
    wait_s: float | None = None,
    ttl_s: float | None = None,
) -> Iterator[bool]:
    """Hold one of `host`'s fetch slots for the duration of the block.

    Waits up to `wait_s` for a free slot, then goes ahead anyway: politeness
    should slow a fetch down, never fail it. Yields whether a slot was held.
    """
    limit = settings.LIBRARIAN_FETCH_PER_HOST if limit is None else limit
    wait_s = settings.LIBRARIAN_FETCH_TOTAL_TIMEOUT_S if wait_s is None else wait_s
    # The slot must outlive the longest fetch, or a slow one would lose it midway.
    ttl_s = settings.LIBRARIAN_FETCH_TOTAL_TIMEOUT_S + 30 if ttl_s is None else ttl_s
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    held: str | None = None
    while limit > 0:
        try:
            held = next(
                (key for i in range(limit) if cache.add(key := _slot_key(host, i), token, ttl_s)),
                None,
            )
        except Exception:  # noqa: BLE001
            # The cache is down (Redis restarting): fetch unslotted rather than fail.
            log.warning("politeness cache unavailable; fetching without a slot", exc_info=True)
            break
        if held is not None or time.monotonic() >= deadline:
            break
        # Jitter keeps waiting workers from polling the cache in lockstep.
        time.sleep(min(random.uniform(*_POLL_S), max(0.0, deadline - time.monotonic())))
    try:
        yield held is not None
    finally:
        # Only free a slot that is still ours: after a TTL expiry another worker may own it.
        if held is not None:
            # A slot we cannot free expires by itself (its TTL).
            with contextlib.suppress(Exception):
                if cache.get(held) == token:
                    cache.delete(held)
