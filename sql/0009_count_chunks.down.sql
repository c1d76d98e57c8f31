SELECT set_chunk_time_interval('ts.production_count', INTERVAL '7 days');
