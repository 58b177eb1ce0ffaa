"""Progress reporting: a tqdm bar on a terminal, plain periodic lines otherwise (logs, CI)."""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


class PlainProgress:
    """tqdm-like object that prints one line at most every ``interval`` seconds, and at the end."""

    def __init__(self, total: int, desc: str, interval: float = 10.0, stream=sys.stderr):
        self.total, self.desc, self.interval, self.stream = total, desc, interval, stream
        self.n, self.postfix, self._start, self._last = 0, "", time.perf_counter(), -float("inf")

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.perf_counter()
        if now - self._last >= self.interval or self.n >= self.total:
            self._last = now
            print(f"{self.desc}: {self.n}/{self.total} [{now - self._start:.0f}s] {self.postfix}".rstrip(),
                  file=self.stream, flush=True)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress(total: int, desc: str, enabled: bool | None = None, interval: float = 10.0):
    """A progress object with ``update``, ``set_postfix_str`` and ``close``.

    ``enabled=None`` chooses a bar on a terminal and plain lines otherwise; ``False`` is silent.
    """
    if enabled is False:
        return tqdm(total=total, desc=desc, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, dynamic_ncols=True)
    return PlainProgress(total, desc, interval)
