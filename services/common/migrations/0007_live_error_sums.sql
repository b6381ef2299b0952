-- The live error kept per 10-minute bucket, like the monitor's histograms: per (model version, bucket of
-- the prediction's created_at), the sum of |prediction - actual| and the count of champion predictions
-- that have feedback. A monitor run adds only the feedback committed since its previous run, so its
-- cost follows the new labels, not the labelled rows of the window.
--
-- `feedback.xid` is the writing transaction (64-bit, never wraps). A run stores its snapshot
-- (`live_error_coverage.seen`); the next one adds exactly the feedback whose transaction that snapshot
-- could not see (pg_visible_in_snapshot), so no feedback is counted twice or missed, whenever its
-- transaction commits. Rows written before this migration have no xid: they count as seen (the first
-- run counts its window whole). No rewrite: the column is added without a default, which is set after.
ALTER TABLE feedback ADD COLUMN xid xid8;
ALTER TABLE feedback ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX feedback_xid ON feedback (xid);

CREATE TABLE live_error_buckets (
    model_version integer NOT NULL,
    bucket_start  timestamptz NOT NULL,
    abs_error_sum double precision NOT NULL,   -- 100k USD
    rows          bigint NOT NULL,
    PRIMARY KEY (model_version, bucket_start)
);
CREATE INDEX live_error_buckets_bucket_start ON live_error_buckets (bucket_start);  -- retention

-- Every bucket in [filled_from, filled_until) is summed in live_error_buckets as of snapshot `seen`.
CREATE TABLE live_error_coverage (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),  -- one row
    filled_from  timestamptz NOT NULL,
    filled_until timestamptz NOT NULL,
    seen         pg_snapshot NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
