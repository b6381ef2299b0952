"""A monitor run's decisions: pure functions of what the run measured and the limits it was given.

``verdict.judge`` composes the rules (``drift``, ``degradation``, ``rollback``, ``plan``); each rule
has its own table of cases in tests/unit/test_monitor_verdict.py.
"""
