"""The `payments` command line."""
