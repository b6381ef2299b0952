-- statement_timeout: 0
--   (it moves every row of the log, however large: it ran without a limit before migrations had timeouts)
-- contract: feedback rows must carry predicted_at (NOT NULL, the partition key): a release older than this one
-- cannot record feedback against this schema. It shipped together with the code that writes it (before the
-- expand/contract rule of docs/migrations.md existed); a revert across it needs the database restored.
-- The prediction log, partitioned by day (UTC): retention drops whole days, and queries on a time
-- range read only the days they need. Moves the rows of the unpartitioned tables over, in this
-- migration's transaction (writers wait for its lock, or spool and replay; readers see the old or the
-- new layout, never half of one).
--
-- A primary key on a partitioned table must hold the partition key: predictions are keyed by
-- (id, created_at); feedback carries its prediction's created_at (predicted_at) and is partitioned on
-- it, so a prediction's truth lives in the same day as the prediction, joins on both columns, and is
-- dropped with it. Each table has a DEFAULT partition: a row whose day has no partition yet lands there
-- instead of failing, and `housing db maintain` moves it out when it creates that day.

ALTER TABLE predictions RENAME TO predictions_unpartitioned;
ALTER INDEX predictions_pkey RENAME TO predictions_unpartitioned_pkey;
ALTER INDEX predictions_created_at RENAME TO predictions_unpartitioned_created_at;
ALTER INDEX predictions_shadow_of RENAME TO predictions_unpartitioned_shadow_of;
ALTER TABLE feedback RENAME TO feedback_unpartitioned;
ALTER INDEX feedback_pkey RENAME TO feedback_unpartitioned_pkey;
ALTER INDEX feedback_received_at RENAME TO feedback_unpartitioned_received_at;

CREATE TABLE predictions (
    id            uuid NOT NULL,              -- UUIDv7 made by the server: its time is within minutes of created_at
    created_at    timestamptz NOT NULL,
    model_version integer NOT NULL,
    role          text NOT NULL CHECK (role IN ('champion', 'challenger')),
    shadow_of     uuid,
    med_inc       double precision NOT NULL,
    house_age     double precision NOT NULL,
    ave_rooms     double precision NOT NULL,
    ave_bedrms    double precision NOT NULL,
    population    double precision NOT NULL,
    ave_occup     double precision NOT NULL,
    latitude      double precision NOT NULL,
    longitude     double precision NOT NULL,
    prediction    double precision NOT NULL,
    latency_ms    real NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX predictions_created_at ON predictions (created_at);
CREATE INDEX predictions_shadow_of ON predictions (shadow_of) WHERE shadow_of IS NOT NULL;
CREATE TABLE predictions_default PARTITION OF predictions DEFAULT;

CREATE TABLE feedback (
    prediction_id uuid NOT NULL,
    predicted_at  timestamptz NOT NULL,       -- the prediction's created_at: the partition key
    actual        double precision NOT NULL CHECK (actual >= 0),
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prediction_id, predicted_at)
) PARTITION BY RANGE (predicted_at);
CREATE INDEX feedback_received_at ON feedback (received_at);
CREATE TABLE feedback_default PARTITION OF feedback DEFAULT;

-- One partition per day that holds rows, and today and the next two days (maintain keeps the rest).
DO $$
DECLARE
    day date;
    low timestamptz;
    high timestamptz;
BEGIN
    FOR day IN
        SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM predictions_unpartitioned
        UNION
        SELECT (now() AT TIME ZONE 'UTC')::date + ahead FROM generate_series(0, 2) AS ahead
        ORDER BY 1
    LOOP
        low := day::timestamp AT TIME ZONE 'UTC';
        high := (day + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE %I PARTITION OF predictions FOR VALUES FROM (%L) TO (%L)',
                       'predictions_p' || to_char(day, 'YYYYMMDD'), low, high);
        EXECUTE format('CREATE TABLE %I PARTITION OF feedback FOR VALUES FROM (%L) TO (%L)',
                       'feedback_p' || to_char(day, 'YYYYMMDD'), low, high);
    END LOOP;
END
$$;

INSERT INTO predictions (id, created_at, model_version, role, shadow_of, med_inc, house_age, ave_rooms,
                         ave_bedrms, population, ave_occup, latitude, longitude, prediction, latency_ms)
SELECT id, created_at, model_version, role, shadow_of, med_inc, house_age, ave_rooms,
       ave_bedrms, population, ave_occup, latitude, longitude, prediction, latency_ms
FROM predictions_unpartitioned;

-- Truth whose prediction never reached the log (written ahead of a batch that was then lost) is kept,
-- filed under the day it was received.
INSERT INTO feedback (prediction_id, predicted_at, actual, received_at)
SELECT f.prediction_id, coalesce(p.created_at, f.received_at), f.actual, f.received_at
FROM feedback_unpartitioned f LEFT JOIN predictions_unpartitioned p ON p.id = f.prediction_id;

DROP TABLE feedback_unpartitioned;
DROP TABLE predictions_unpartitioned;
