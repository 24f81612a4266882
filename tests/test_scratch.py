"""runtime.scratch: per-thread work arrays, kept from one decode to the next within a bound."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from svdcodec.runtime import band_sizes, scratch


@pytest.fixture(autouse=True)
def fresh_thread_arrays() -> None:
    scratch._kept.__dict__.clear()


def test_one_array_per_name_and_thread_reused_across_users() -> None:
    first = scratch.ThreadBuffers().get("x", 100)
    again = scratch.ThreadBuffers().get("x", 60)  # another decode, same thread
    assert np.shares_memory(first, again) and again.size == 60
    assert not np.shares_memory(first, scratch.ThreadBuffers().get("y", 100))
    assert scratch.ThreadBuffers().get("x", 10, np.uint8).dtype == np.uint8
    grown = scratch.ThreadBuffers().get("x", 200)
    assert grown.size == 200 and not np.shares_memory(first, grown)
    found: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: found.append(scratch.ThreadBuffers().get("x", 100)))
    worker.start()
    worker.join()
    assert not np.shares_memory(found[0], grown)


def test_arrays_beyond_the_bounds_last_only_as_long_as_their_user(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(band_sizes, "KEEP_BYTES", 400)
    monkeypatch.setattr(band_sizes, "KEEP_THREAD_BYTES", 600)
    user = scratch.ThreadBuffers()
    big = user.get("big", 101)  # 404 bytes of float32: above KEEP_BYTES
    assert np.shares_memory(big, user.get("big", 101))  # kept by its user
    assert not np.shares_memory(big, scratch.ThreadBuffers().get("big", 101))
    a = user.get("a", 100)
    b = user.get("b", 100)  # 800 bytes with a: above KEEP_THREAD_BYTES
    assert np.shares_memory(a, scratch.ThreadBuffers().get("a", 100))
    assert not np.shares_memory(b, scratch.ThreadBuffers().get("b", 100))
    assert sum(x.nbytes for x in scratch._kept.__dict__.values()) <= 600


def test_an_expected_size_makes_one_array_for_smaller_and_larger_asks() -> None:
    user = scratch.ThreadBuffers()
    user.expect("x", 300)
    user.expect("x", 200)  # the largest expected size stands
    small = user.get("x", 100)
    assert small.size == 100
    assert np.shares_memory(small, user.get("x", 300))  # no second array for the larger ask
    assert user.get("x", 301).size == 301  # beyond it: a new array, as without `expect`


def test_arrays_not_kept_are_reused_by_their_user_alone() -> None:
    user = scratch.ThreadBuffers(kept=False)  # the encoder's bands of one pass
    first = user.get("x", 100)
    assert np.shares_memory(first, user.get("x", 80))  # the next band's
    assert not scratch._kept.__dict__  # none kept for the next decode
    assert not np.shares_memory(first, scratch.ThreadBuffers(kept=False).get("x", 100))
    kept = scratch.ThreadBuffers().get("x", 100)
    assert not np.shares_memory(kept, user.get("x", 100))  # nor taken from the kept ones
