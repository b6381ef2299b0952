"""``make bench``: performance goals measured against baselines run in the same session."""
