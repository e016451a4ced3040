"""The gRPC face of the contacts service: protobuf ↔ domain, and the handlers."""
