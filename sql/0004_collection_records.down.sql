DROP VIEW ingest_api.signal_map;
CREATE VIEW ingest_api.signal_map AS
SELECT s.id AS signal_id, s.code AS signal_code, s.kind, s.low_limit, s.high_limit,
       e.id AS equipment_id, e.code AS equipment_code
FROM mes.signal s
JOIN mes.equipment e ON e.id = s.equipment_id;
GRANT SELECT ON ingest_api.signal_map TO mes_ingest;
DROP TABLE ts.unknown_state, ts.counter_discontinuity, ts.collection_gap;
