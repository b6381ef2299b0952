"""``python -m benchmarks``: the serving benchmark, the monitor's scale benchmark, the log's scale benchmark.

Each prints a markdown table with ratios against baselines measured in the same run; docs/benchmarks.md keeps
the latest tables. Run one alone: ``python -m benchmarks.serving``, ``python -m benchmarks.monitor_scale``,
``python -m benchmarks.log_scale``,
``python -m benchmarks.monitor_process``, ``python -m benchmarks.drift_sample``,
``python -m benchmarks.recent_weight`` (TRAIN_RECENT_WEIGHT), ``python -m benchmarks.restore_time`` (the
database part of the RTO, docs/restore.md) and ``python -m benchmarks.model_selection``
(the model's features and hyper-parameters by cross-validation), not in this chain: minutes of fits.
"""

from __future__ import annotations

from benchmarks import drift_sample, log_scale, monitor_process, monitor_scale, serving

if __name__ == "__main__":
    print("## Serving (issues 3, 11 and 12)\n", flush=True)
    serving.main()
    print("\n## Monitor at scale (issue 4)\n", flush=True)
    monitor_scale.main([])
    print("\n## The prediction log at scale (issue 9)\n", flush=True)
    log_scale.main([])
    print("\n## The monitor as a whole process (issue 9)\n", flush=True)
    monitor_process.main([])
    print("\n## The drift sample's size (issue 9)\n", flush=True)
    drift_sample.main([])
