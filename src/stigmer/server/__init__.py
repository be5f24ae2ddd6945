"""The gRPC server: services per kind over the domain controllers."""
