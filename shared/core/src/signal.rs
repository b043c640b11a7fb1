//! The three OTLP signals and the seven tables they land in.

use std::fmt;
use std::str::FromStr;

/// An OTLP signal: what an export request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `ExportLogsServiceRequest`, `POST /v1/logs`.
    Logs,
    /// `ExportTraceServiceRequest`, `POST /v1/traces`.
    Traces,
    /// `ExportMetricsServiceRequest`, `POST /v1/metrics`.
    Metrics,
}

impl Signal {
    /// All signals, in a stable order.
    pub const ALL: [Signal; 3] = [Signal::Logs, Signal::Traces, Signal::Metrics];

    /// The lowercase name used in URLs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }

    /// The tables records of this signal can land in.
    pub fn tables(self) -> &'static [Table] {
        match self {
            Signal::Logs => &[Table::Logs],
            Signal::Traces => &[Table::Traces],
            Signal::Metrics => &[
                Table::MetricsGauge,
                Table::MetricsSum,
                Table::MetricsHistogram,
                Table::MetricsExponentialHistogram,
                Table::MetricsSummary,
            ],
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "logs" => Ok(Signal::Logs),
            "traces" => Ok(Signal::Traces),
            "metrics" => Ok(Signal::Metrics),
            other => Err(format!(
                "unknown signal {other:?}: expected logs, traces or metrics"
            )),
        }
    }
}

/// A destination table. Metrics are split by data point type, as in the
/// OpenTelemetry Collector's ClickHouse exporter, because each type has other columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Log records.
    Logs,
    /// Spans.
    Traces,
    /// Gauge data points.
    MetricsGauge,
    /// Sum (counter) data points.
    MetricsSum,
    /// Explicit-bucket histogram data points.
    MetricsHistogram,
    /// Exponential histogram data points.
    MetricsExponentialHistogram,
    /// Summary data points.
    MetricsSummary,
}

impl Table {
    /// All tables, in a stable order.
    pub const ALL: [Table; 7] = [
        Table::Logs,
        Table::Traces,
        Table::MetricsGauge,
        Table::MetricsSum,
        Table::MetricsHistogram,
        Table::MetricsExponentialHistogram,
        Table::MetricsSummary,
    ];

    /// The table's name in the catalog and on disk.
    pub fn name(self) -> &'static str {
        match self {
            Table::Logs => "logs",
            Table::Traces => "traces",
            Table::MetricsGauge => "metrics_gauge",
            Table::MetricsSum => "metrics_sum",
            Table::MetricsHistogram => "metrics_histogram",
            Table::MetricsExponentialHistogram => "metrics_exponential_histogram",
            Table::MetricsSummary => "metrics_summary",
        }
    }

    /// The table called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The signal whose requests feed this table.
    pub fn signal(self) -> Signal {
        match self {
            Table::Logs => Signal::Logs,
            Table::Traces => Signal::Traces,
            _ => Signal::Metrics,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
