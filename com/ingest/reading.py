"""Reading input within bounds: a file only if it is a regular file (a device or a FIFO could be endless or
block for ever), and no more than `max_input_mb` of it, from a file or a stream alike."""

from __future__ import annotations

import os
import stat
from typing import Iterator

from com.model.errors import ComError

MIB = 1024 * 1024
DEFAULT_MAX_INPUT_MB = 1024


def limit_bytes(setting) -> int:
    """The input limit in bytes from the `max_input_mb` setting (a whole number of MiB, at least 1)."""
    try:
        mb = int(setting if setting is not None else DEFAULT_MAX_INPUT_MB)
    except (TypeError, ValueError):
        mb = 0
    if mb < 1 or isinstance(setting, bool):
        raise ComError(f"max_input_mb must be a whole number of MiB, at least 1 (got {setting!r})",
                       param="max_input_mb")
    return mb * MIB


def _too_big(origin: str, limit: int) -> ComError:
    return ComError(f"{origin}: more than {limit // MIB:,} MiB of input (the max_input_mb setting; split it into "
                    "several ingests)")


def _open_regular(path, param: str | None):
    """A regular file opened for reading in binary, else one line saying why not."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would wait for a writer; checked right below, then refused.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ComError(f"cannot read {path}: {exc.strerror or exc}", param=param) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
        raise ComError(f"{path} is not a regular file ({kind}; use '-' to read a stream from stdin)", param=param)
    return os.fdopen(fd, "rb")


def read_file(path: str | os.PathLike, limit: int, param: str | None = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else one line saying why not."""
    with _open_regular(path, param) as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            raise _too_big(str(path), limit)
        try:
            data = fh.read(limit + 1)  # the file may have grown since fstat
        except OSError as exc:
            raise ComError(f"cannot read {path}: {exc.strerror or exc}", param=param) from None
    if len(data) > limit:
        raise _too_big(str(path), limit)
    return data


def file_lines(path: str | os.PathLike, limit: int, param: str | None = "file") -> Iterator[str]:
    """The lines of a regular UTF-8 file of at most `limit` bytes, read as they are asked for (a file of a million
    events is never held whole); only "\\n" ends a line."""
    with _open_regular(path, param) as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            raise _too_big(str(path), limit)
        yield from stream_lines(fh, limit, str(path), param)


_BLOCK = 1 << 20


def stream_lines(stream, limit: int, origin: str = "<stdin>", param: str | None = None) -> Iterator[str]:
    """The lines of a binary stream as UTF-8 text, at most `limit` bytes in all (an endless stream, or an endless
    line, ends here, not in memory). Read a block at a time, decoded whole while it holds no problem; a line past
    the limit or not UTF-8 is refused when reached, as if read one line at a time."""
    total = 0  # bytes of the lines handed out
    rest: list[bytes] = []  # the start of a line whose end is not read yet (in parts: a long line is not copied
    held = 0  # over and over), and its length
    while True:
        room = limit + 1 - total - held  # never more than limit + 1 bytes read in all
        if room <= 0:
            raise _too_big(origin, limit)
        try:
            block = stream.read(min(_BLOCK, room))
        except OSError as exc:
            raise ComError(f"{origin}: cannot read: {exc.strerror or exc}", param=param) from None
        if not block:
            if rest:
                yield from _one_by_one([b"".join(rest)], total, limit, origin, param)
            return
        end = block.rfind(b"\n") + 1
        if end == 0:
            rest.append(block)
            held += len(block)
            continue
        whole = block[:end]
        if rest:
            whole = b"".join(rest) + whole
        rest = [block[end:]] if end < len(block) else []
        held = len(block) - end
        if total + len(whole) <= limit:
            try:
                text = whole.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                total += len(whole)
                lines = text.split("\n")
                lines.pop()  # "" after the last newline
                for line in lines:
                    yield line + "\n"
                continue
        lines = whole.split(b"\n")
        lines.pop()
        yield from _one_by_one([line + b"\n" for line in lines], total, limit, origin, param)
        total += len(whole)  # (not reached: one of these lines is refused)


def _one_by_one(raws: list[bytes], total: int, limit: int, origin: str, param: str | None) -> Iterator[str]:
    """Lines checked one at a time, so the first one past the limit or not UTF-8 is the one refused."""
    for raw in raws:
        total += len(raw)
        if total > limit:
            raise _too_big(origin, limit)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ComError(f"{origin}: not UTF-8 text ({exc.reason} at byte {total - len(raw) + exc.start})",
                           param=param) from None
        yield line
