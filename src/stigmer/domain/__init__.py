"""The domain: a controller per kind, composed of pipeline steps."""
