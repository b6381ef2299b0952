"""The request path's counter and histogram expose what prometheus_client's would for the same
observations (its ``_created`` series aside), and lose no count when threads observe at once."""

from __future__ import annotations

import sys
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from services.inference.metrics import LATENCY_BUCKETS
from services.inference.plain_metrics import LabelledCounter, LabelledHistogram

VALUES = [0.0, 0.001, 0.0011, 0.0049, 0.005, 0.3, 2.5, 9.99, 10.0, 11.0, 1e9, -1.0]


def _exposed(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_the_exposition_is_prometheus_client_s() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("http_requests", "Requests.", ["route", "method", "status"], registry=theirs)
    histogram = Histogram("latency_seconds", "Latency.", ["route"], buckets=LATENCY_BUCKETS, registry=theirs)
    plain = Histogram("value", "Values.", buckets=(0.5, 1, 8), registry=theirs)
    my_counter = LabelledCounter("http_requests", "Requests.", ["route", "method", "status"], registry=ours)
    my_histogram = LabelledHistogram(
        "latency_seconds", "Latency.", ["route"], buckets=LATENCY_BUCKETS, registry=ours
    )
    my_plain = LabelledHistogram("value", "Values.", buckets=(0.5, 1, 8), registry=ours).labels()
    for route, status in [("/predict", "200"), ("/predict", "422"), ("/predict", "200"), ("/model", "503")]:
        counter.labels(route, "POST", status).inc()
        my_counter.labels(route, "POST", status).inc()
    for value in VALUES:
        histogram.labels("/predict").observe(value)
        my_histogram.labels("/predict").observe(value)
        histogram.labels("/model").observe(value / 2)
        my_histogram.labels("/model").observe(value / 2)
        plain.observe(value)
    my_plain.observe_many(VALUES)
    assert _exposed(ours) == _exposed(theirs)


def test_threads_observing_at_once_lose_no_count() -> None:
    histogram = LabelledHistogram("h", "H.", buckets=(1.0, 2.0), registry=CollectorRegistry()).labels()
    counter = LabelledCounter("c", "C.", ["k"], registry=CollectorRegistry())

    def work() -> None:
        for _ in range(20_000):
            histogram.observe(1.5)
            histogram.observe_many([0.5, 3.0])
            counter.labels("x").inc()

    threads = [threading.Thread(target=work) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two bytecodes: a race shows within a run
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert histogram.snapshot() == ([80_000, 80_000, 80_000], 80_000 * 5.0)
    assert counter.labels("x").value == 80_000
