-- Undo 0001. Dropping the schemas drops every grant this database made; roles are
-- cluster-wide, so each is dropped only when no other database still refers to it.
DROP SCHEMA erp, ingest_api, ts, mes CASCADE;

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['mes_ingest', 'mes_app', 'mes_erp_reader', 'mes_analyst'] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('DROP ROLE %I', r);
            EXCEPTION WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role % is still used by another database; kept', r;
            END;
        END IF;
    END LOOP;
END
$$;
