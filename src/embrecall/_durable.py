"""Writes that survive a crash whole or not at all: write-temp, fsync, rename, fsync the folder.

Shared by everything that flips a pointer or publishes a directory (artifacts, version roots,
batch sinks), so a reader sees the old state or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (the temp name is unique per process)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` (before the rename that publishes it)."""
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """fsync a folder, so that a rename in it reaches the disk (best effort where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: Path, *, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (created when absent) for the block.

    The kernel drops the lock when its holder dies, so whoever takes it next knows that every
    temporary thing made under it by an earlier holder is stale. With ``remove=True`` the lock
    file is deleted on release; a waiter that then wakes on the deleted file sees that its inode
    is no longer the one at ``path`` and takes the lock again on the new file.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: one writer at a time is then the operator's job
        yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # while still held, see above
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether a live process holds the ``flock`` of ``path`` now (False when there is none)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken just now
    return False
