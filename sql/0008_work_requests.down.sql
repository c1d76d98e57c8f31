DROP INDEX mes.ix_work_request_equipment_id_cause;
ALTER TABLE mes.work_request DROP CONSTRAINT ck_work_request_occurrences,
    DROP COLUMN last_event_at, DROP COLUMN occurrences;
DROP TABLE mes.condition_rule, mes.work_request_trigger;
