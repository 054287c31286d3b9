"""Recovery: unknown-outcome inquiry, retries with backoff, expiry, compensations."""
