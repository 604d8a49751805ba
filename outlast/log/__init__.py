"""The log: NATS JetStream, the only place a durable fact is written first."""
