"""Many sites, one central store: each site's forwarder publishes what its database stored to
a durable NATS JetStream stream, and the central ingest writes it into the central store.

Neither side decodes time-series rows: they travel as PostgreSQL binary COPY data. Sites
keep collecting while the link is down; their database is the backlog.
"""
