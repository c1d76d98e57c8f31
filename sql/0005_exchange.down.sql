DROP VIEW erp.machine_actual, erp.labor_actual, erp.material_consumption,
    erp.production_actual, erp.operation_actual;
DROP TABLE mes.process_event, mes.run_signal_envelope, mes.work_request,
    mes.erp_export_record, mes.erp_export;
DROP INDEX mes.ix_material_lot_produced_by_run_id, mes.ix_operation_run_equipment_id_started_at;
