"""Print the gateway's forwarding-service block for a backend service, for
proto/crm/gateway/v1/<backend>.proto (see docs/gateway.md, "Adding a backend service").

    .venv/bin/python scripts/gateway_service_block.py crm.sales.v1.OrderService

It reads the generated descriptors (run `make proto` first): every RPC with the backend's own
request and response messages, streaming and idempotency level, as the route table requires.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from google.protobuf import descriptor_pb2, descriptor_pool


def block(full_name: str) -> str:
    package = full_name.rpartition(".")[0]
    module = importlib.import_module(package)  # load the package's generated modules
    for info in pkgutil.iter_modules(module.__path__):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{info.name}")
    service = descriptor_pool.Default().FindServiceByName(full_name)
    lines = [
        f"// The public operations of {full_name}, as they are there.",
        f"service {service.name} {{",
    ]
    for method in service.methods:
        request = ("stream " if method.client_streaming else "") + method.input_type.full_name
        reply = ("stream " if method.server_streaming else "") + method.output_type.full_name
        head = f"  rpc {method.name}({request}) returns ({reply})"
        if method.input_type.name != f"{method.name}Request":
            lines.append("  // buf:lint:ignore RPC_REQUEST_STANDARD_NAME")
        if method.output_type.name != f"{method.name}Response":
            lines.append("  // buf:lint:ignore RPC_RESPONSE_STANDARD_NAME")
        level = method.GetOptions().idempotency_level
        if level:
            name = descriptor_pb2.MethodOptions.IdempotencyLevel.Name(level)
            lines += [head + " {", f"    option idempotency_level = {name};", "  }"]
        else:
            lines.append(head + ";")
    lines.append("}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(block(sys.argv[1]))
