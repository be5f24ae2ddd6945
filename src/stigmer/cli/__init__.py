"""The `stigmer` command line: kubectl habits over the Python SDK."""
