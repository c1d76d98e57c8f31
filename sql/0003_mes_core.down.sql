DROP TABLE mes.audit_chain, mes.audit_log, mes.maintenance_window, mes.labor_session,
    mes.disposition, mes.nonconformance, mes.electronic_signature, mes.inspection_result,
    mes.genealogy_link CASCADE;
DROP VIEW mes.material_balance;
DROP TABLE mes.lot_movement, mes.material_lot, mes.storage_location, mes.operation_run,
    mes.work_order, mes.inspection_plan, mes.bom_item, mes.routing_operation,
    mes.product_definition, mes.document_revision, mes.document, mes.person_certification,
    mes.certification CASCADE;
DROP FUNCTION mes.audit_row(), mes.audit_digest(bytea, timestamptz, text, text, text, text,
                                                jsonb, jsonb),
    mes.apply_lot_movement(), mes.refuse_change();
