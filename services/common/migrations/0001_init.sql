-- The four tables of the closed loop. Prices are in the model's unit: 100,000 USD.

CREATE TABLE predictions (
    id            uuid PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    model_version integer NOT NULL,
    role          text NOT NULL CHECK (role IN ('champion', 'challenger')),
    shadow_of     uuid,                       -- a challenger row names the champion row it shadows
    med_inc       double precision NOT NULL,
    house_age     double precision NOT NULL,
    ave_rooms     double precision NOT NULL,
    ave_bedrms    double precision NOT NULL,
    population    double precision NOT NULL,
    ave_occup     double precision NOT NULL,
    latitude      double precision NOT NULL,
    longitude     double precision NOT NULL,
    prediction    double precision NOT NULL,
    latency_ms    real NOT NULL
);
CREATE INDEX predictions_created_at ON predictions (created_at);
CREATE INDEX predictions_shadow_of ON predictions (shadow_of) WHERE shadow_of IS NOT NULL;

-- Ground truth, arriving later. One truth per prediction: a repeated POST is a no-op.
-- No foreign key: predictions are written in batches, and feedback may arrive first.
CREATE TABLE feedback (
    prediction_id uuid PRIMARY KEY,
    actual        double precision NOT NULL CHECK (actual >= 0),
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_received_at ON feedback (received_at);

CREATE TABLE drift_reports (
    id             bigserial PRIMARY KEY,
    created_at     timestamptz NOT NULL DEFAULT now(),
    window_start   timestamptz,
    window_end     timestamptz,
    model_version  integer,
    rows           bigint NOT NULL DEFAULT 0,
    labelled_rows  bigint NOT NULL DEFAULT 0,
    psi            jsonb NOT NULL DEFAULT '{}',
    tests          jsonb NOT NULL DEFAULT '{}',
    drift_share    double precision,
    live_mae       double precision,
    reference_mae  double precision,
    status         text NOT NULL,
    action         text NOT NULL DEFAULT 'none',
    alerted        boolean NOT NULL DEFAULT false,
    report_path    text,
    details        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX drift_reports_created_at ON drift_reports (created_at);

CREATE TABLE model_events (
    id               bigserial PRIMARY KEY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    event            text NOT NULL
                     CHECK (event IN ('registered', 'promoted', 'rejected', 'forced', 'rolled_back')),
    model_version    integer NOT NULL,
    previous_version integer,
    actor            text NOT NULL,
    reasons          jsonb NOT NULL DEFAULT '[]',
    figures          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX model_events_created_at ON model_events (created_at);
