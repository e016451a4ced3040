"""The gRPC side of the sales service: handlers and message conversion."""
