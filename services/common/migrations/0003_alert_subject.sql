-- What an alert episode is about (e.g. the trainer Job that failed): a different subject while the
-- kind stays active starts a new episode, so each failed trainer is alerted once.
ALTER TABLE monitor_alert_state ADD COLUMN subject text;
