"""Resource kinds, the envelope they share, slugs, ids and YAML manifests."""
