-- The server the monitor's kept sums were counted on. The kept histograms and live-error sums remember a
-- transaction snapshot (`late_seen_xmin`, `seen`) and take in only rows of later transactions. Transaction
-- ids belong to one server: a database dumped and restored into another (a provider move, a disaster)
-- starts its ids low again, and every comparison with the stored snapshot then hides the new rows. A run
-- compares this column with `(pg_control_system()).system_identifier` (new with every initdb) and the
-- stored xmin with the current ids, and recounts from scratch when either says the server changed.
-- Expand only: two nullable columns (NULL: counted before this migration; then only the ids are compared).
ALTER TABLE monitor_histogram_coverage ADD COLUMN system_identifier bigint;
ALTER TABLE live_error_coverage ADD COLUMN system_identifier bigint;
