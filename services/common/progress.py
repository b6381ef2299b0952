"""Progress on long work: one line per stage on stderr, with its duration."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Stages:
    """Prints ``[2/5] evaluating ... done in 1.2 s`` lines; stdout stays free for ``--json`` output."""

    def __init__(self, total: int, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.quiet = quiet

    @contextmanager
    def stage(self, title: str) -> Iterator[None]:
        self.done += 1
        self.say(f"[{self.done}/{self.total}] {title} ...", end=" ")
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self.say("failed")
            raise
        self.say(f"done in {time.perf_counter() - started:.1f} s")

    def say(self, text: str, end: str = "\n") -> None:
        if not self.quiet:
            print(text, end=end, file=self.stream, flush=True)
