"""The application layer: use cases over the domain (get -> act -> save), ports only."""
