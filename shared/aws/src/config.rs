//! The deployment's configuration, read from `OTLP2PARQUET_*` variables.
//!
//! Every stage reads the variables it needs at start-up and fails there — a
//! Lambda init error — with a message that names the variable and says what
//! it should hold, rather than failing on the first request.

use std::fmt;

/// A variable that is missing or does not hold what it should.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The variable's name.
    pub variable: &'static str,
    /// What is wrong and what it should hold.
    pub problem: String,
}

impl ConfigError {
    /// `variable` is wrong: `problem` says how and what it should hold.
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            variable,
            problem: problem.into(),
        }
    }
}

/// Where tables are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    /// S3 Tables through its control plane.
    S3Tables,
    /// An Iceberg REST catalog.
    Rest,
    /// No catalog: compacted Parquet files only (plain mode).
    None,
}

impl fmt::Display for CatalogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CatalogKind::S3Tables => "s3tables",
            CatalogKind::Rest => "rest",
            CatalogKind::None => "none",
        })
    }
}

/// The variables, looked up through a function so tests need not touch the
/// process environment.
pub struct Variables<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

/// What SQS accepts per message unless the queue says more: 256 KiB, the
/// limit of queues created before AWS raised it to 1 MiB. Bodies over it are
/// passed by reference (`otlp2parquet_core::messages::send_message`).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The process environment's variables.
pub fn environment() -> Variables<impl Fn(&str) -> Option<String>> {
    Variables {
        lookup: |name: &str| std::env::var(name).ok(),
    }
}

impl Variables<Box<dyn Fn(&str) -> Option<String> + Send + Sync>> {
    /// Exactly these variables (for tests and tools that build a
    /// configuration without touching the process environment).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Variables {
            lookup: Box::new(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            }),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Variables<F> {
    /// Variables from `lookup`.
    pub fn from_fn(lookup: F) -> Self {
        Variables { lookup }
    }

    /// The variable's value, when set and not empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// Whether `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` tells every client
    /// to disregard the `AWS_ENDPOINT_URL*` variables, as the SDK does.
    pub fn ignores_configured_endpoints(&self) -> bool {
        self.optional("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    }

    /// S3's addressing: path-style (`endpoint/bucket/key`) or virtual-hosted
    /// (`bucket.endpoint/key`), as `OTLP2PARQUET_S3_PATH_STYLE=true|false`
    /// says (the SDK has no variable of its own for it), by default
    /// path-style exactly when the S3 endpoint is overridden: MinIO,
    /// LocalStack and moto serve buckets there, while virtual-hosted names
    /// (`bucket.127.0.0.1`) resolve nowhere.
    pub fn s3_path_style(&self, endpoint_overridden: bool) -> Result<bool, ConfigError> {
        match self.optional("OTLP2PARQUET_S3_PATH_STYLE").as_deref() {
            None => Ok(endpoint_overridden),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(ConfigError::new(
                "OTLP2PARQUET_S3_PATH_STYLE",
                "should be true (endpoint/bucket/key) or false (bucket.endpoint/key)",
            )),
        }
    }

    /// The variable's value, or an error saying that it should hold `what`.
    pub fn required(&self, name: &'static str, what: &str) -> Result<String, ConfigError> {
        self.optional(name).ok_or_else(|| ConfigError {
            variable: name,
            problem: format!("not set; it should hold {what}"),
        })
    }

    /// A whole number, `default` unless set.
    pub fn number(&self, name: &'static str, default: usize) -> Result<usize, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(name, format!("{value:?} is not a whole number"))),
        }
    }

    /// `OTLP2PARQUET_CATALOG`.
    pub fn catalog(&self) -> Result<CatalogKind, ConfigError> {
        const NAME: &str = "OTLP2PARQUET_CATALOG";
        let what =
            "s3tables (S3 Tables), rest (an Iceberg REST catalog) or none (plain Parquet files)";
        match self.required(NAME, what)?.trim() {
            "s3tables" => Ok(CatalogKind::S3Tables),
            "rest" => Ok(CatalogKind::Rest),
            "none" => Ok(CatalogKind::None),
            other => Err(ConfigError {
                variable: NAME,
                problem: format!("{other:?} is not a catalog; it should be {what}"),
            }),
        }
    }

    /// `OTLP2PARQUET_ICEBERG_NAMESPACE`, `otel` unless set.
    pub fn namespace(&self) -> Result<String, ConfigError> {
        const NAME: &str = "OTLP2PARQUET_ICEBERG_NAMESPACE";
        let namespace = self.optional(NAME).unwrap_or_else(|| "otel".to_string());
        let valid = namespace
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !namespace.starts_with('_');
        if !valid {
            return Err(ConfigError {
                variable: NAME,
                problem: format!(
                    "{namespace:?} is not a namespace S3 Tables accepts; use lower-case letters, digits and underscores"
                ),
            });
        }
        Ok(namespace)
    }

    /// A queue URL variable (`OTLP2PARQUET_COMPACTION_QUEUE_URL`, `…_COMMIT_QUEUE_URL`).
    pub fn queue_url(&self, name: &'static str) -> Result<String, ConfigError> {
        let url = self.required(
            name,
            "the queue's URL, https://sqs.<region>.amazonaws.com/<account>/<name>",
        )?;
        if !(url.starts_with("https://") || url.starts_with("http://")) || !url.contains('/') {
            return Err(ConfigError {
                variable: name,
                problem: format!(
                    "{url:?} is not a queue URL; it should look like https://sqs.<region>.amazonaws.com/<account>/<name>"
                ),
            });
        }
        Ok(url)
    }

    /// `OTLP2PARQUET_ICEBERG_WAREHOUSE` in S3 Tables mode: the table
    /// bucket's ARN.
    pub fn table_bucket_arn(&self) -> Result<String, ConfigError> {
        const NAME: &str = "OTLP2PARQUET_ICEBERG_WAREHOUSE";
        let arn = self.required(
            NAME,
            "the table bucket's ARN, arn:aws:s3tables:<region>:<account>:bucket/<name>",
        )?;
        if !arn.starts_with("arn:") || !arn.contains(":bucket/") {
            return Err(ConfigError::new(
                NAME,
                format!(
                    "{arn:?} is not a table bucket ARN; it should look like \
                     arn:aws:s3tables:<region>:<account>:bucket/<name>"
                ),
            ));
        }
        Ok(arn)
    }

    /// An `s3://bucket[/prefix]` variable (`OTLP2PARQUET_STATE_URI`): the
    /// bucket and the prefix.
    pub fn s3_uri(&self, name: &'static str, what: &str) -> Result<(String, String), ConfigError> {
        let uri = self.required(name, what)?;
        let invalid = || ConfigError {
            variable: name,
            problem: format!("{uri:?} is not an s3://bucket[/prefix] URI; it should hold {what}"),
        };
        let rest = uri.strip_prefix("s3://").ok_or_else(invalid)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.len() < 3 {
            return Err(invalid());
        }
        Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
    }
}

/// Where files go in plain mode: `OTLP2PARQUET_S3_BUCKET` and
/// `OTLP2PARQUET_S3_PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainWarehouse {
    /// The bucket.
    pub bucket: String,
    /// The prefix inside it (may be empty).
    pub prefix: String,
}

impl PlainWarehouse {
    /// Reads the two variables.
    pub fn from_variables<F: Fn(&str) -> Option<String>>(
        variables: &Variables<F>,
    ) -> Result<Self, ConfigError> {
        let bucket = variables.required(
            "OTLP2PARQUET_S3_BUCKET",
            "the name of the bucket the Parquet files go to (plain mode, OTLP2PARQUET_CATALOG=none)",
        )?;
        Ok(PlainWarehouse {
            bucket,
            prefix: variables
                .optional("OTLP2PARQUET_S3_PREFIX")
                .unwrap_or_default()
                .trim_matches('/')
                .to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable_and_what_it_should_hold() {
        let err = Variables::from_pairs(&[]).catalog().unwrap_err();
        assert_eq!(err.variable, "OTLP2PARQUET_CATALOG");
        assert!(
            err.to_string().contains("not set; it should hold s3tables"),
            "{err}"
        );
        let err = Variables::from_pairs(&[("OTLP2PARQUET_CATALOG", "glue")])
            .catalog()
            .unwrap_err();
        assert!(
            err.to_string().contains("\"glue\" is not a catalog"),
            "{err}"
        );
        let err = Variables::from_pairs(&[("OTLP2PARQUET_STATE_URI", "bucket/x")])
            .s3_uri("OTLP2PARQUET_STATE_URI", "the state bucket")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("OTLP2PARQUET_STATE_URI: \"bucket/x\" is not an s3://"),
            "{err}"
        );
        let err = Variables::from_pairs(&[("OTLP2PARQUET_ICEBERG_NAMESPACE", "My-Otel")])
            .namespace()
            .unwrap_err();
        assert_eq!(err.variable, "OTLP2PARQUET_ICEBERG_NAMESPACE");
        let err = Variables::from_pairs(&[("OTLP2PARQUET_COMMIT_QUEUE_URL", "commit")])
            .queue_url("OTLP2PARQUET_COMMIT_QUEUE_URL")
            .unwrap_err();
        assert!(err.to_string().contains("is not a queue URL"), "{err}");
    }

    #[test]
    fn values_and_defaults() {
        let vars = Variables::from_pairs(&[
            ("OTLP2PARQUET_CATALOG", "none"),
            ("OTLP2PARQUET_S3_BUCKET", "telemetry"),
            ("OTLP2PARQUET_S3_PREFIX", "/otlp/"),
            ("OTLP2PARQUET_STATE_URI", "s3://state-bucket/pipeline/"),
        ]);
        assert_eq!(vars.catalog().unwrap(), CatalogKind::None);
        assert_eq!(vars.namespace().unwrap(), "otel");
        assert_eq!(
            PlainWarehouse::from_variables(&vars).unwrap(),
            PlainWarehouse {
                bucket: "telemetry".into(),
                prefix: "otlp".into()
            }
        );
        assert_eq!(
            vars.s3_uri("OTLP2PARQUET_STATE_URI", "").unwrap(),
            ("state-bucket".to_string(), "pipeline".to_string())
        );
    }
}
