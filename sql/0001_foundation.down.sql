-- Undo 0001. Dropping the schemas drops every grant this database made. The roles stay:
-- they are cluster-wide, other databases may use them, and deployments have granted them
-- to their own login roles.
DROP SCHEMA erp, ingest_api, ts, mes CASCADE;
