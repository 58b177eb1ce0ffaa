"""Progress reporting for long loops (samples, epochs); used by every layer above this one too.

``Progress(total, initial=0, desc=..., mode=None)``: ``mode=None`` picks a tqdm bar when stderr is
a terminal and plain periodic lines otherwise (logs of batch jobs stay readable: one line about
every 10 % of the work or every 10 s, whichever comes first, plus a final line); ``True`` forces
the tqdm bar, ``False`` is silent. Everything goes to stderr.
"""
from __future__ import annotations

import sys
import time

LINE_FRACTION = 0.1
LINE_SECONDS = 10.0


class Progress:
    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "sample",
                 mode: bool | None = None, stream=None) -> None:
        self.total, self.n, self.desc, self.unit = int(total), int(initial), desc, unit
        self.stream = sys.stderr if stream is None else stream
        if mode is None:
            isatty = getattr(self.stream, "isatty", None)
            mode = "bar" if isatty is not None and isatty() else "lines"
        elif mode is True:
            mode = "bar"
        else:
            mode = "off"
        self.mode = mode
        self._bar = None
        self.postfix = ""
        self._t0 = self._last_t = time.perf_counter()
        self._start_n = self._last_n = self.n
        if mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, initial=self.n, desc=desc, unit=unit, file=self.stream,
                             dynamic_ncols=True)
        elif mode == "lines":
            self._print(f"{desc}: resuming at {self.n}/{self.total} {unit}s" if self.n
                        else f"{desc}: 0/{self.total} {unit}s")

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _line(self) -> str:
        elapsed = time.perf_counter() - self._t0
        done = self.n - self._start_n
        pct = 100.0 * self.n / self.total if self.total else 100.0
        text = f"{self.desc}: {self.n}/{self.total} {self.unit}s ({pct:.0f}%), {elapsed:.1f} s"
        if 0 < done and self.n < self.total:
            text += f", ~{elapsed / done * (self.total - self.n):.0f} s left"
        return f"{text}  {self.postfix}" if self.postfix else text

    def set_postfix_str(self, text: str) -> None:
        """Extra status (a loss, say) shown after the counts."""
        self.postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def update(self, k: int) -> None:
        self.n += int(k)
        if self._bar is not None:
            self._bar.update(k)
        elif self.mode == "lines":
            now = time.perf_counter()
            if (self.n - self._last_n >= LINE_FRACTION * self.total or now - self._last_t >= LINE_SECONDS) \
                    and self.n < self.total:
                self._print(self._line())
                self._last_n, self._last_t = self.n, now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self.n >= self.total and self._last_n != -1:
            self._print(self._line() + ", done")
            self._last_n = -1

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
