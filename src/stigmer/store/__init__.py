"""Transactional storage of resources: one narrow interface, real backends.

See base.py for the interface, rows.py for how a record maps to a row in
every backend, sqlite/ for the default backend and postgres/ for the one
shared by several servers; urls.py picks one from a store URL.
"""
