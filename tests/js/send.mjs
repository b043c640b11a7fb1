// Sends logs, traces and metrics to an OTLP/HTTP endpoint with the OpenTelemetry
// JavaScript SDK's JSON exporters (chunked bodies, no Content-Length), then exits.
// Usage: node send.mjs http://127.0.0.1:4318 SPANS LOGS
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { SeverityNumber } from '@opentelemetry/api-logs';

const [endpoint, spanCount, logCount] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const resource = resourceFromAttributes({ 'service.name': 'js-sdk-test' });

const tracerProvider = new BasicTracerProvider({
  resource,
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }))],
});
const tracer = tracerProvider.getTracer('js-test');
for (let i = 0; i < spanCount; i++) {
  const span = tracer.startSpan(`js-op-${i % 4}`, { attributes: { i } });
  span.addEvent('tick', { n: i });
  span.end();
}
await tracerProvider.forceFlush();
await tracerProvider.shutdown();

const loggerProvider = new LoggerProvider({
  resource,
  processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `${endpoint}/v1/logs` }) })],
});
const logger = loggerProvider.getLogger('js-test');
for (let i = 0; i < logCount; i++) {
  logger.emit({ severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: `js record ${i}`, attributes: { n: i, nested: { k: 'v' } } });
}
await loggerProvider.forceFlush();
await loggerProvider.shutdown();

const reader = new PeriodicExportingMetricReader({
  exporter: new OTLPMetricExporter({ url: `${endpoint}/v1/metrics` }),
  exportIntervalMillis: 60000,
});
const meterProvider = new MeterProvider({ resource, readers: [reader] });
const meter = meterProvider.getMeter('js-test');
const counter = meter.createCounter('js.requests');
const gauge = meter.createGauge('js.temperature');
for (let i = 0; i < 6; i++) {
  counter.add(1, { route: `/r${i % 2}` });
  gauge.record(20 + i, { room: 'a' });
}
await meterProvider.forceFlush();
await meterProvider.shutdown();
