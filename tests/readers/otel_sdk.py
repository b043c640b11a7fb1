"""Telemetry sent by the OpenTelemetry Python SDK's OTLP/HTTP exporters (protobuf),
as an application instrumented with it sends it."""

import logging


def send_with_python_sdk(url, service_name):
    """Exports, to the OTLP/HTTP endpoint `url`, under `service_name`: 120 spans
    (`op-0`..`op-2`, attribute `i`, one event `tick` each; gzip), 75 log records
    (`record N ünïcødé`, attribute `request.id` = `rN`), a counter `requests` (5 per
    route, two routes) and a histogram `latency` (10 values), then shuts down."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=Compression.Gzip)))
    tracer = tracer_provider.get_tracer("test")
    for i in range(120):
        with tracer.start_as_current_span(f"op-{i % 3}") as span:
            span.set_attribute("i", i)
            span.add_event("tick", {"n": i})
    tracer_provider.shutdown()

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs")))
    # Our own logger, not the root: the exporter's HTTP logs would loop.
    logger = logging.getLogger(f"otlp2parquet-sdk-test-{service_name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(LoggingHandler(logger_provider=logger_provider))
    for i in range(75):
        logger.warning("record %d ünïcødé", i, extra={"request.id": f"r{i}"})
    logger_provider.shutdown()

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{url}/v1/metrics"),
                                           export_interval_millis=60_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meter_provider.get_meter("test")
    counter = meter.create_counter("requests")
    histogram = meter.create_histogram("latency", unit="ms")
    for i in range(10):
        counter.add(1, {"route": f"/r{i % 2}"})
        histogram.record(i * 1.5, {"route": f"/r{i % 2}"})
    meter_provider.shutdown()
