DROP TABLE ts.counter_discontinuity, ts.collection_gap;
