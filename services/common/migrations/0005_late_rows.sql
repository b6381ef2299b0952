-- Late rows: predictions logged well after they were made (a spool replayed after an outage, or a
-- queue that waited). The writer records the time range of each late batch here, in the batch's own
-- transaction; the monitor recounts the 10-minute buckets it already kept in that range, so late rows
-- reach the histograms on its next run without it rescanning the window.
--
-- `xid` is the writing transaction (64-bit, never wraps). A monitor run remembers the oldest
-- transaction still running when it read this table (pg_snapshot_xmin): every record from an older
-- transaction was visible to it (or aborted), so the next run reads only records from that one on.
-- Ordering by a sequence would not do: a transaction can take a lower number and commit later.
CREATE TABLE prediction_late_rows (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_at  timestamptz NOT NULL,           -- the oldest late row's created_at
    last_at   timestamptz NOT NULL,           -- the newest late row's created_at
    rows      integer NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT now(),
    xid       xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX prediction_late_rows_xid ON prediction_late_rows (xid);
CREATE INDEX prediction_late_rows_last_at ON prediction_late_rows (last_at);  -- retention

-- The xmin of the snapshot in which the coverage's kept buckets last took in the late rows.
ALTER TABLE monitor_histogram_coverage ADD COLUMN late_seen_xmin xid8;
