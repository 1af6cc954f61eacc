"""HTTP core: transport, retries, configuration, secrets, logging, idempotency keys."""
