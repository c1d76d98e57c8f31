-- Day chunks for the 1 Hz counts: a day partition's derivation sums one day, and with
-- 7-day chunks (and no index leading with ts) it scanned the whole week's chunk to find it.
-- Applies to chunks created from now on.
SELECT set_chunk_time_interval('ts.production_count', INTERVAL '1 day');
