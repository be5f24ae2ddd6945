"""Execution engines: what runs executions once they are created."""
