"""The HTTP API, the HTML pages, settings, the composition root and the CLI."""
