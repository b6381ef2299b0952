"""``python -m benchmarks``: the serving benchmark, then the monitor's scale benchmark.

Each prints a markdown table with ratios against baselines measured in the same run; the README keeps
the latest tables. Run one alone: ``python -m benchmarks.serving``, ``python -m benchmarks.monitor_scale``.
"""

from __future__ import annotations

from benchmarks import monitor_scale, serving

if __name__ == "__main__":
    print("## Serving (issue 3)\n", flush=True)
    serving.main()
    print("\n## Monitor at scale (issue 4)\n", flush=True)
    monitor_scale.main([])
