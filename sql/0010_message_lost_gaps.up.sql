-- 0010 message-lost gaps: a Sparkplug B edge node's sequence numbers skipped, so messages
-- between two that arrived were lost. The gap spans from the last message before to the
-- first one after, and is recorded closed.

ALTER TABLE ts.collection_gap DROP CONSTRAINT ck_collection_gap_cause;
ALTER TABLE ts.collection_gap ADD CONSTRAINT ck_collection_gap_cause CHECK (cause IN
    ('source_lost', 'collector_stopped', 'collector_crashed', 'spool_overflow',
     'message_lost'));
