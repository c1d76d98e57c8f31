DROP SCHEMA central CASCADE;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['mes.equipment', 'mes.signal', 'mes.material_definition',
                             'mes.product_definition', 'mes.work_order', 'mes.operation_run',
                             'mes.material_lot', 'mes.genealogy_link', 'ts.collection_gap',
                             'derived.kpi'] LOOP
        EXECUTE format('DROP TRIGGER tr_%s_forward ON %s', split_part(t, '.', 2), t);
    END LOOP;
END
$$;
DROP SCHEMA site CASCADE;
ALTER TABLE ts.process_value DROP COLUMN xid;
ALTER TABLE ts.equipment_state DROP COLUMN xid;
ALTER TABLE ts.production_count DROP COLUMN xid;
