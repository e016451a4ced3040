"""The sales domain: pipelines, opportunities, leads and money, as plain Python.

Nothing here imports gRPC, protobuf or a database driver; the API layer converts messages to
these types and maps :mod:`crm_platform.errors` to status codes.
"""
