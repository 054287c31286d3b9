"""Read models (order status, failures, ledger, work queue), their runner, and the audit."""
