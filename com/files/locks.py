"""File locks shared by processes writing one memory.

flock, not lock files: the kernel releases a flock when its holder dies, even by SIGKILL, so a killed
ingest, sync or index update never leaves the memory locked."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def flock(path: Path, exclusive: bool = True):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
