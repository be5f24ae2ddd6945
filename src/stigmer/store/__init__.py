"""Transactional storage of resources: one narrow interface, real backends.

See base.py for the interface and sqlite.py for the default backend.
"""
