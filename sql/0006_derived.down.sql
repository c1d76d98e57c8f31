DROP SCHEMA derived CASCADE;
DROP TABLE mes.downtime_classification, mes.fault_code_reason;
