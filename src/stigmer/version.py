"""The Stigmer version, in a module of its own: the server reports it
(GetInfo) and may not import the package root, which imports the SDK."""

__version__ = "0.1.0"
