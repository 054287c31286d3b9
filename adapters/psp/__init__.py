"""PSP connectors behind the domain's PSP port, each parsing its own notifications."""
