-- The monitor's own state: histogram counts per 10-minute bucket (so a run scans only the rows that
-- arrived since the last run), and the alert episodes (so separate CronJob pods share one cool-down).

-- Counts of champion predictions per 10-minute bucket, feature and PSI bin, made with one champion's
-- bin edges (profile_key: a digest of the edges). Bin b holds edges[b-1] <= value < edges[b] (SQL width_bucket).
CREATE TABLE monitor_histograms (
    profile_key  text NOT NULL,
    bucket_start timestamptz NOT NULL,
    feature      text NOT NULL,
    bin          integer NOT NULL,
    rows         bigint NOT NULL,
    PRIMARY KEY (profile_key, bucket_start, feature, bin)
);
CREATE INDEX monitor_histograms_bucket_start ON monitor_histograms (bucket_start);  -- retention

-- Every bucket in [filled_from, filled_until) is counted in monitor_histograms (an empty one has no rows).
CREATE TABLE monitor_histogram_coverage (
    profile_key  text PRIMARY KEY,
    filled_from  timestamptz NOT NULL,
    filled_until timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per kind of alert (drift, live_error, launch_failed): the episode in progress and the last alert.
CREATE TABLE monitor_alert_state (
    kind               text PRIMARY KEY,
    active             boolean NOT NULL DEFAULT false,
    episode_started_at timestamptz,
    episode_alerted    boolean NOT NULL DEFAULT false,
    last_alert_at      timestamptz,
    last_seen_at       timestamptz
);
