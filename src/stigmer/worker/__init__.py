"""`stigmer worker`: the process that runs the Temporal engine's activities."""
