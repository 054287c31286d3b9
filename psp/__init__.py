"""PSP adapters (the HTTP client) and the PSP simulator with fault injection."""
