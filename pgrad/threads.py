"""The torch CPU thread count for a block of work (``Config.threads``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` torch CPU threads inside the block (None: leave torch's setting),
    then restore the previous count. Results can depend on the count (the summation order
    of a matrix product or of the QR behind orthogonal initialisation), so a seeded agent
    is built, trained and evaluated under its own count, whatever the caller's."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
