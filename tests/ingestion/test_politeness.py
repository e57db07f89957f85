from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import override_settings

from ingestion.politeness import host_slot

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture(autouse=True)
def _local_cache() -> Iterator[None]:
    with override_settings(CACHES=LOCMEM, LIBRARIAN_FETCH_PER_HOST=2):
        cache.clear()
        yield
        cache.clear()


def test_it_lets_up_to_the_limit_in_at_once() -> None:
    with host_slot("example.com") as first, host_slot("example.com") as second:
        assert (first, second) == (True, True)


def test_it_makes_the_next_fetch_wait_then_go_ahead() -> None:
    with host_slot("example.com"), host_slot("example.com"):
        started = time.monotonic()
        with host_slot("example.com", wait_s=0.3) as held:
            waited = time.monotonic() - started

    assert held is False
    assert 0.3 <= waited < 1.0


def test_it_counts_hosts_separately() -> None:
    with host_slot("a.example"), host_slot("a.example"):
        started = time.monotonic()
        with host_slot("b.example", wait_s=5) as held:
            assert held
        assert time.monotonic() - started < 0.5


def test_it_frees_the_slot_on_exit_even_after_an_error() -> None:
    with pytest.raises(RuntimeError), host_slot("example.com", limit=1):
        raise RuntimeError("fetch failed")

    with host_slot("example.com", limit=1, wait_s=0) as held:
        assert held


def test_it_never_runs_more_than_the_limit_at_once() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal running, peak
        with host_slot("busy.example", wait_s=10):
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.1)
            with lock:
                running -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert peak == 2
    assert time.monotonic() - started >= 0.3  # six fetches, two at a time, 0.1 s each


def test_it_recovers_a_slot_a_crashed_worker_never_released() -> None:
    crashed = host_slot("example.com", limit=1, ttl_s=0.3)
    assert crashed.__enter__() is True  # and never exits, as if the worker died

    started = time.monotonic()
    with host_slot("example.com", limit=1, wait_s=5) as held:
        waited = time.monotonic() - started

    assert held
    assert waited < 1.5
