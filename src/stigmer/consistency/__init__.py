"""The store's invariants, checked from outside and repaired."""
