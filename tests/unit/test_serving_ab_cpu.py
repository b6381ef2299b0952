"""The A/B benchmark's CPU reading: ``/proc/<pid>/stat`` user + system time of a whole process."""

from __future__ import annotations

import os
import time

from benchmarks.serving_ab import cpu_seconds


def test_cpu_seconds_counts_this_process_work_and_not_its_sleep() -> None:
    start = cpu_seconds(os.getpid())
    time.sleep(0.3)
    slept = cpu_seconds(os.getpid()) - start
    busy_until = time.process_time() + 0.5
    while time.process_time() < busy_until:
        pass
    worked = cpu_seconds(os.getpid()) - start - slept
    assert slept < 0.2  # clock ticks (10 ms) of a sleeping process: nearly none
    assert 0.4 <= worked <= 1.5, worked
