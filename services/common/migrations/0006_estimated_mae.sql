-- The window's label-free MAE estimate (100k USD, like live_mae): the champion's error model averaged
-- over the run's sample; null when the champion has no error model or the window too few rows.
ALTER TABLE drift_reports ADD COLUMN estimated_mae double precision;
