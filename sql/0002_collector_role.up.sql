-- The collector connects as the schema owner (or any login that is a member of mes_ingest)
-- and then acts as mes_ingest (SET ROLE), so it can only insert time series and read the
-- signal map. Role membership is cluster-wide; granting it again is harmless.
GRANT mes_ingest TO CURRENT_USER;
