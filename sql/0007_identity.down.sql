REVOKE SELECT ON erp.operation_actual, erp.production_actual, erp.material_consumption,
    erp.labor_actual, erp.machine_actual FROM mes_app;
REVOKE USAGE ON SCHEMA erp FROM mes_app;
-- Back to 0006: one chain lock per writer again, the chain recomputed in id order.
DO $$
DECLARE
    audited text;
BEGIN
    FOREACH audited IN ARRAY ARRAY['inspection_plan', 'person', 'personnel_class',
            'person_class_membership', 'auth_event', 'run_correction']
    LOOP
        EXECUTE format('DROP TRIGGER tr_%s_audit ON mes.%I', audited, audited);
    END LOOP;
END $$;

DROP TRIGGER tr_audit_log_append_only ON mes.audit_log;
DROP TRIGGER tr_audit_log_no_truncate ON mes.audit_log;
DROP TRIGGER tr_audit_chain_no_truncate ON mes.audit_chain;
DROP FUNCTION mes.audit_log_guard();
DROP FUNCTION mes.audit_seal(integer);
DROP FUNCTION mes.audit_seal_digest(bytea, bigint, timestamptz, text, text, text, text, jsonb,
                                    jsonb);
DROP INDEX mes.ix_audit_log_unsealed;
ALTER TABLE mes.audit_log DROP CONSTRAINT ck_audit_log_sealed;
ALTER TABLE mes.audit_log DROP COLUMN chain_position;
ALTER TABLE mes.audit_chain DROP COLUMN records;

DO $$
DECLARE
    rec mes.audit_log;
    previous bytea := sha256(''::bytea);
    last bigint;
BEGIN
    FOR rec IN SELECT * FROM mes.audit_log ORDER BY id LOOP
        UPDATE mes.audit_log SET previous_hash = previous,
            hash = mes.audit_digest(previous, rec.at, rec.actor, rec.table_name,
                                    rec.record_id, rec.action, rec.before, rec.after)
        WHERE id = rec.id RETURNING hash INTO previous;
        last := rec.id;
    END LOOP;
    UPDATE mes.audit_chain SET last_id = last, last_hash = previous;
END $$;
ALTER TABLE mes.audit_log ALTER COLUMN previous_hash SET NOT NULL;
ALTER TABLE mes.audit_log ALTER COLUMN hash SET NOT NULL;
CREATE TRIGGER tr_audit_log_append_only BEFORE UPDATE OR DELETE ON mes.audit_log
    FOR EACH ROW EXECUTE FUNCTION mes.refuse_change();

CREATE OR REPLACE FUNCTION mes.audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, mes AS $$
DECLARE
    who text := nullif(current_setting('mes.actor', true), '');
    old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    record_key text := coalesce(new_row, old_row)->>'id';
    chain mes.audit_chain;
    stamp timestamptz := date_trunc('microseconds', clock_timestamp());
    digest bytea;
    new_id bigint;
BEGIN
    IF who IS NULL THEN
        RAISE EXCEPTION 'a change to mes.% needs the acting person: SET LOCAL mes.actor',
            TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF record_key IS NULL THEN
        SELECT string_agg(coalesce(new_row, old_row)->>a.attname, ',' ORDER BY k.ord)
        INTO record_key
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = TG_RELID AND i.indisprimary;
    END IF;
    SELECT * INTO chain FROM mes.audit_chain FOR UPDATE;
    digest := mes.audit_digest(chain.last_hash, stamp, who, TG_TABLE_NAME, record_key,
                               lower(TG_OP), old_row, new_row);
    INSERT INTO mes.audit_log (at, actor, table_name, record_id, action, before, after,
                               previous_hash, hash)
    VALUES (stamp, who, TG_TABLE_NAME, record_key, lower(TG_OP),
            old_row, new_row, chain.last_hash, digest)
    RETURNING id INTO new_id;
    UPDATE mes.audit_chain SET last_id = new_id, last_hash = digest;
    RETURN NULL;
END $$;

ALTER FUNCTION mes.apply_lot_movement() SECURITY INVOKER;
DROP TRIGGER tr_material_lot_quantity ON mes.material_lot;
DROP FUNCTION mes.lot_quantity_from_movements();
GRANT UPDATE ON mes.material_lot TO mes_app;
GRANT INSERT, UPDATE, DELETE ON mes.person, mes.personnel_class, mes.person_class_membership
    TO mes_app;
GRANT TRUNCATE ON ALL TABLES IN SCHEMA mes TO mes_app;

ALTER TABLE mes.work_order DROP CONSTRAINT ck_work_order_code_length;
ALTER TABLE mes.material_lot DROP CONSTRAINT ck_material_lot_code_length;
ALTER TABLE mes.storage_location DROP CONSTRAINT ck_storage_location_code_length;
ALTER TABLE mes.document DROP CONSTRAINT ck_document_code_length;
ALTER TABLE mes.maintenance_window DROP CONSTRAINT ck_maintenance_window_external_id_length;

ALTER TABLE mes.electronic_signature DROP COLUMN printed_name;
DROP TABLE mes.run_correction;
ALTER TABLE mes.operation_run DROP COLUMN abort_reason;
DROP TABLE mes.auth_event, mes.login_session, mes.credential;
DELETE FROM mes.person WHERE kind = 'system'
    AND NOT EXISTS (SELECT FROM mes.audit_log WHERE actor = person.badge);
ALTER TABLE mes.person DROP COLUMN kind;
ALTER TABLE mes.personnel_class DROP COLUMN role;
