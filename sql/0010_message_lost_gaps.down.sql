DELETE FROM ts.collection_gap WHERE cause = 'message_lost';
ALTER TABLE ts.collection_gap DROP CONSTRAINT ck_collection_gap_cause;
ALTER TABLE ts.collection_gap ADD CONSTRAINT ck_collection_gap_cause CHECK (cause IN
    ('source_lost', 'collector_stopped', 'collector_crashed', 'spool_overflow'));
