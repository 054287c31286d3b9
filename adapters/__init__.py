"""Everything that touches the outside world: the event store, SQL, PSP connectors, metrics."""
