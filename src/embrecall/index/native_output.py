"""faiss's C++ code prints some warnings (k-means given too few training points, for one) with
``fprintf(stderr)``, straight to file descriptor 2, where neither logging's configuration nor a
CLI's ``-q`` reaches them. Around such calls, this module catches that output and hands it to the
``embrecall`` logger, so the application decides what is shown."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

log = logging.getLogger("embrecall")

# Descriptor 2 is one per process: two captures at once would restore each other's copy.
_LOCK = threading.Lock()


@contextlib.contextmanager
def native_stderr_logged(what: str, level: int = logging.WARNING) -> Iterator[None]:
    """Run the body with descriptor 2 redirected to a temporary file, then log each line of it
    (prefixed with ``what``) at ``level``."""
    with _LOCK, tempfile.TemporaryFile() as sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            for line in text.splitlines():
                if line.strip():
                    log.log(level, "%s: %s", what, line.strip())
