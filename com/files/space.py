"""Is a file system out of space? Libraries often say only "disk I/O error" or "no error" when it is."""

from __future__ import annotations

import os
from pathlib import Path

# Below this much free space a failed write is taken to be a full disk. It is measured after the failure, when
# the library has removed its partial file and a store may have checkpointed its WAL: a margin of a few pages
# (64 KiB) was sometimes read as space left on a disk that had just been full.
LOW = 1024 * 1024


def disk_full(path) -> bool:
    """Is the file system holding `path` (or its nearest existing parent) out of space?"""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < LOW
