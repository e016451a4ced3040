"""OpenTelemetry set-up from the standard ``OTEL_*`` environment variables.

Exporters follow ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (``otlp``, ``console`` or
``none``); when they are unset, OTLP is used if ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the per-signal
variant) is set, otherwise nothing is exported. ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` describe the resource; ``OTEL_SDK_DISABLED=true`` turns it all off.
The maintained instrumentations for gRPC (client), aiokafka and PyMongo are switched on here;
the gRPC server side is instrumented by the interceptor the server runner installs.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

log = logging.getLogger(__name__)

_tracer_provider: TracerProvider | None = None
_meter_provider: MeterProvider | None = None


_SUPPORTED_EXPORTERS = ("otlp", "console", "none")


def _exporter_choice(signal: str) -> str:
    """The exporter for ``signal``; unsupported values fail at start-up, not silently."""
    name = f"OTEL_{signal.upper()}_EXPORTER"
    explicit = os.environ.get(name, "").strip().lower()
    if explicit:
        choice = explicit.split(",")[0]
        if choice not in _SUPPORTED_EXPORTERS:
            raise ValueError(
                f"{name}={explicit!r}: supported are {', '.join(_SUPPORTED_EXPORTERS)}"
            )
        if choice == "otlp":
            _check_protocol(signal)
        return choice
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    )
    if endpoint:
        _check_protocol(signal)
        return "otlp"
    return "none"


def _check_protocol(signal: str) -> None:
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = os.environ.get(name, "").strip()
        if protocol and protocol != "grpc":
            raise ValueError(f"{name}={protocol!r}: only OTLP over gRPC ('grpc') is supported")


def _span_processor(choice: str) -> SpanProcessor | None:
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(OTLPSpanExporter())
    if choice == "console":
        return BatchSpanProcessor(ConsoleSpanExporter())
    return None


def _metric_reader(choice: str) -> MetricReader | None:
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return PeriodicExportingMetricReader(OTLPMetricExporter())
    if choice == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    return None


def configure_telemetry(service_name: str) -> TracerProvider:
    """Install the global tracer and meter providers once per process and instrument libraries.

    Returns the tracer provider so tests can attach an in-memory exporter to it.
    """
    global _tracer_provider, _meter_provider
    if _tracer_provider is not None:
        return _tracer_provider
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true"
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    tracer_provider = TracerProvider(resource=resource)
    readers: list[MetricReader] = []
    if not disabled:
        processor = _span_processor(_exporter_choice("traces"))
        if processor is not None:
            tracer_provider.add_span_processor(processor)
        reader = _metric_reader(_exporter_choice("metrics"))
        if reader is not None:
            readers.append(reader)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _tracer_provider, _meter_provider = tracer_provider, meter_provider
    if not disabled:
        GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
        AIOKafkaInstrumentor().instrument()
        PymongoInstrumentor().instrument()
    return tracer_provider


def shutdown_telemetry() -> None:
    """Flush and stop the exporters (called last during graceful shutdown)."""
    if _tracer_provider is not None:
        _tracer_provider.force_flush()
        _tracer_provider.shutdown()
    if _meter_provider is not None:
        _meter_provider.shutdown()
