//! The catalog a deployment commits to, read from its variables: S3 Tables
//! through its control plane, or any Iceberg REST catalog — S3 Tables' and
//! Glue's Iceberg endpoints signed with SigV4, others with a bearer token or
//! OAuth2 client credentials. Table files are read and written with the
//! deployment's own S3 client either way, so `AWS_ENDPOINT_URL` and the
//! credential chain apply to them as to everything else.
//!
//! Settings are read (and refused) before any client exists, so that a wrong
//! variable is a start-up error naming it; [`CatalogSettings::open`] then
//! builds the catalog once per process.

use std::fmt;
use std::sync::Arc;

use iceberg::Catalog;
use otlp2parquet_aws::config::{CatalogKind, ConfigError, Variables};

use crate::rest::{
    OAuth2ClientCredentials, RestAuth, RestCatalog, RestCatalogConfig, SigV4, aws_region,
    aws_signing_name,
};
use crate::s3tables::S3TablesCatalog;

const REST_URI: &str = "OTLP2PARQUET_ICEBERG_REST_URI";
const REST_AUTH: &str = "OTLP2PARQUET_ICEBERG_REST_AUTH";
const REST_TOKEN: &str = "OTLP2PARQUET_ICEBERG_REST_TOKEN";
const REST_CREDENTIAL: &str = "OTLP2PARQUET_ICEBERG_REST_CREDENTIAL";
const REST_OAUTH2_URI: &str = "OTLP2PARQUET_ICEBERG_REST_OAUTH2_URI";
const REST_SCOPE: &str = "OTLP2PARQUET_ICEBERG_REST_SCOPE";
const REST_SIGNING_NAME: &str = "OTLP2PARQUET_ICEBERG_REST_SIGNING_NAME";
const REST_SIGNING_REGION: &str = "OTLP2PARQUET_ICEBERG_REST_SIGNING_REGION";

/// Which catalog, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogSettings {
    /// S3 Tables' control plane; the table bucket's ARN.
    S3Tables {
        /// `OTLP2PARQUET_ICEBERG_WAREHOUSE`.
        table_bucket_arn: String,
    },
    /// An Iceberg REST catalog.
    Rest(RestSettings),
}

impl CatalogSettings {
    /// `OTLP2PARQUET_CATALOG` and what it needs; `None` in plain mode.
    pub fn from_variables<F: Fn(&str) -> Option<String>>(
        variables: &Variables<F>,
    ) -> Result<Option<Self>, ConfigError> {
        Ok(match variables.catalog()? {
            CatalogKind::None => None,
            CatalogKind::S3Tables => Some(CatalogSettings::S3Tables {
                table_bucket_arn: variables.table_bucket_arn()?,
            }),
            CatalogKind::Rest => Some(CatalogSettings::Rest(RestSettings::from_variables(
                variables,
                variables.optional("OTLP2PARQUET_ICEBERG_WAREHOUSE"),
            )?)),
        })
    }

    /// Builds the catalog: its files through `s3`, SigV4 credentials and
    /// region from `sdk`. A REST catalog is asked for its configuration here.
    ///
    /// # Errors
    /// The catalog cannot be reached or refuses the credentials.
    pub async fn open(
        &self,
        sdk: &aws_config::SdkConfig,
        s3: aws_sdk_s3::Client,
    ) -> Result<Arc<dyn Catalog>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(match self {
            CatalogSettings::S3Tables { table_bucket_arn } => Arc::new(S3TablesCatalog::over_s3(
                aws_sdk_s3tables::Client::new(sdk),
                table_bucket_arn,
                s3,
            )?),
            CatalogSettings::Rest(rest) => {
                let config = rest.config(Some(sdk))?;
                let uri = config.uri.clone();
                let storage = crate::storage::PortStorageFactory::over_s3(s3);
                Arc::new(
                    RestCatalog::connect(config, Arc::new(storage))
                        .await
                        .map_err(|e| format!("the REST catalog at {uri}: {e}"))?,
                )
            }
        })
    }
}

/// A REST catalog's address and authentication, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestSettings {
    /// `OTLP2PARQUET_ICEBERG_REST_URI`.
    pub uri: String,
    /// The warehouse to ask for (S3 Tables: the table bucket's ARN).
    pub warehouse: Option<String>,
    /// How requests are authenticated.
    pub auth: RestAuthSettings,
}

/// How requests to a REST catalog are authenticated, as configured.
#[derive(Clone, PartialEq, Eq)]
pub enum RestAuthSettings {
    /// No authentication.
    None,
    /// A fixed bearer token.
    Bearer(String),
    /// OAuth2 client credentials.
    OAuth2 {
        /// The token endpoint.
        token_uri: String,
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
        /// The scope.
        scope: String,
    },
    /// SigV4 with the default credential chain.
    SigV4 {
        /// `s3tables`, `glue`, ...
        signing_name: String,
        /// The region, if not the SDK's.
        region: Option<String>,
    },
}

impl fmt::Debug for RestAuthSettings {
    // Names the authentication, never its secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestAuthSettings::None => f.write_str("none"),
            RestAuthSettings::Bearer(_) => f.write_str("bearer token"),
            RestAuthSettings::OAuth2 {
                token_uri,
                client_id,
                scope,
                ..
            } => write!(f, "OAuth2 client {client_id} at {token_uri}, scope {scope}"),
            RestAuthSettings::SigV4 {
                signing_name,
                region,
            } => write!(f, "SigV4 {signing_name} in {region:?}"),
        }
    }
}

impl RestSettings {
    /// `OTLP2PARQUET_ICEBERG_REST_URI` and the authentication variables;
    /// `warehouse` is the one to ask the server for.
    ///
    /// Authentication is `OTLP2PARQUET_ICEBERG_REST_AUTH` (`sigv4`,
    /// `oauth2`, `bearer`, `none`) or, unset: SigV4 for an AWS endpoint,
    /// OAuth2 when `..._CREDENTIAL` is set, a bearer token when `..._TOKEN`
    /// is, none otherwise.
    pub fn from_variables<F: Fn(&str) -> Option<String>>(
        variables: &Variables<F>,
        warehouse: Option<String>,
    ) -> Result<Self, ConfigError> {
        let uri = variables
            .required(
                REST_URI,
                "the Iceberg REST catalog's base URI (before /v1), e.g. \
                 https://s3tables.us-east-1.amazonaws.com/iceberg",
            )?
            .trim_end_matches('/')
            .to_string();
        if reqwest::Url::parse(&uri)
            .ok()
            .is_none_or(|u| !matches!(u.scheme(), "http" | "https") || u.host().is_none())
        {
            return Err(ConfigError::new(
                REST_URI,
                format!("{uri:?} is not an http(s):// URI; it should be the catalog's base URI"),
            ));
        }
        let kind = match variables.optional(REST_AUTH).as_deref() {
            Some("sigv4") => "sigv4",
            Some("oauth2") => "oauth2",
            Some("bearer") => "bearer",
            Some("none") => "none",
            Some(other) => {
                return Err(ConfigError::new(
                    REST_AUTH,
                    format!("{other:?}; it should be one of sigv4, oauth2, bearer, none"),
                ));
            }
            None if aws_signing_name(&uri).is_some() => "sigv4",
            None if variables.optional(REST_CREDENTIAL).is_some() => "oauth2",
            None if variables.optional(REST_TOKEN).is_some() => "bearer",
            None => "none",
        };
        let auth = match kind {
            "sigv4" => RestAuthSettings::SigV4 {
                signing_name: match variables.optional(REST_SIGNING_NAME) {
                    Some(name) => name,
                    None => aws_signing_name(&uri).map(str::to_string).ok_or_else(|| {
                        ConfigError::new(
                            REST_SIGNING_NAME,
                            format!(
                                "unset, and {uri} is not an S3 Tables or Glue endpoint; it should \
                                 be the service name requests are signed for (s3tables, glue)"
                            ),
                        )
                    })?,
                },
                region: variables
                    .optional(REST_SIGNING_REGION)
                    .or_else(|| aws_region(&uri)),
            },
            "oauth2" => {
                let credential = variables.required(
                    REST_CREDENTIAL,
                    "the OAuth2 client credentials, client_id:client_secret",
                )?;
                let (client_id, client_secret) = credential.split_once(':').ok_or_else(|| {
                    ConfigError::new(
                        REST_CREDENTIAL,
                        "has no ':'; it should hold client_id:client_secret",
                    )
                })?;
                RestAuthSettings::OAuth2 {
                    token_uri: variables
                        .optional(REST_OAUTH2_URI)
                        .unwrap_or_else(|| format!("{uri}/v1/oauth/tokens")),
                    client_id: client_id.to_string(),
                    client_secret: client_secret.to_string(),
                    scope: variables
                        .optional(REST_SCOPE)
                        .unwrap_or_else(|| "catalog".to_string()),
                }
            }
            "bearer" => RestAuthSettings::Bearer(
                variables.required(REST_TOKEN, "the bearer token the REST catalog wants")?,
            ),
            _ => RestAuthSettings::None,
        };
        Ok(RestSettings {
            uri,
            warehouse,
            auth,
        })
    }

    /// Whether requests are signed with SigV4 (and need an AWS configuration).
    pub fn signs_with_sigv4(&self) -> bool {
        matches!(self.auth, RestAuthSettings::SigV4 { .. })
    }

    /// The client's configuration; SigV4 takes its credentials (and, when
    /// not configured, its region) from `sdk`.
    pub fn config(
        &self,
        sdk: Option<&aws_config::SdkConfig>,
    ) -> Result<RestCatalogConfig, ConfigError> {
        let auth = match &self.auth {
            RestAuthSettings::None => RestAuth::None,
            RestAuthSettings::Bearer(token) => RestAuth::Bearer(token.clone()),
            RestAuthSettings::OAuth2 {
                token_uri,
                client_id,
                client_secret,
                scope,
            } => RestAuth::OAuth2(OAuth2ClientCredentials {
                token_uri: token_uri.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                scope: scope.clone(),
            }),
            RestAuthSettings::SigV4 {
                signing_name,
                region,
            } => {
                let no_credentials = || {
                    ConfigError::new(
                        REST_AUTH,
                        "sigv4, but no AWS credentials are configured (the default chain: \
                         AWS_ACCESS_KEY_ID..., a profile, or the function's role)",
                    )
                };
                let sdk = sdk.ok_or_else(no_credentials)?;
                let region = region
                    .clone()
                    .or_else(|| sdk.region().map(|r| r.to_string()))
                    .ok_or_else(|| {
                        ConfigError::new(
                            REST_SIGNING_REGION,
                            "unset, and neither the URI nor AWS_REGION names a region; it should \
                             be the region of the catalog's endpoint",
                        )
                    })?;
                RestAuth::SigV4(SigV4 {
                    signing_name: signing_name.clone(),
                    region,
                    credentials: sdk.credentials_provider().ok_or_else(no_credentials)?,
                })
            }
        };
        Ok(RestCatalogConfig {
            uri: self.uri.clone(),
            warehouse: self.warehouse.clone(),
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(pairs: &[(&str, &str)]) -> Result<RestSettings, ConfigError> {
        let mut all = vec![("OTLP2PARQUET_CATALOG", "rest")];
        all.extend_from_slice(pairs);
        match CatalogSettings::from_variables(&Variables::from_pairs(&all))? {
            Some(CatalogSettings::Rest(rest)) => Ok(rest),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aws_endpoints_are_signed_for_their_service_and_region() {
        let s3tables = rest(&[
            (
                REST_URI,
                "https://s3tables.eu-west-1.amazonaws.com/iceberg/",
            ),
            (
                "OTLP2PARQUET_ICEBERG_WAREHOUSE",
                "arn:aws:s3tables:eu-west-1:123456789012:bucket/telemetry",
            ),
        ])
        .unwrap();
        assert_eq!(
            s3tables.uri,
            "https://s3tables.eu-west-1.amazonaws.com/iceberg"
        );
        assert_eq!(
            s3tables.warehouse.as_deref(),
            Some("arn:aws:s3tables:eu-west-1:123456789012:bucket/telemetry")
        );
        assert_eq!(
            s3tables.auth,
            RestAuthSettings::SigV4 {
                signing_name: "s3tables".into(),
                region: Some("eu-west-1".into())
            }
        );
        let glue = rest(&[(REST_URI, "https://glue.us-east-2.amazonaws.com/iceberg")]).unwrap();
        assert!(
            matches!(&glue.auth, RestAuthSettings::SigV4 { signing_name, .. } if signing_name == "glue")
        );
    }

    #[test]
    fn other_catalogs_take_oauth2_a_token_or_nothing() {
        let uri = (REST_URI, "https://catalog.example.com/api/catalog");
        let oauth2 = rest(&[uri, (REST_CREDENTIAL, "client:s3cr3t:x")]).unwrap();
        assert_eq!(
            oauth2.auth,
            RestAuthSettings::OAuth2 {
                token_uri: "https://catalog.example.com/api/catalog/v1/oauth/tokens".into(),
                client_id: "client".into(),
                client_secret: "s3cr3t:x".into(),
                scope: "catalog".into(),
            }
        );
        assert!(
            !format!("{oauth2:?}").contains("s3cr3t"),
            "secrets stay out of logs"
        );
        let bearer = rest(&[uri, (REST_TOKEN, "t0ken")]).unwrap();
        assert_eq!(bearer.auth, RestAuthSettings::Bearer("t0ken".into()));
        assert!(!format!("{bearer:?}").contains("t0ken"));
        assert_eq!(rest(&[uri]).unwrap().auth, RestAuthSettings::None);
        // Signing a non-AWS endpoint needs the service name spelled out.
        let err = rest(&[uri, (REST_AUTH, "sigv4")]).unwrap_err();
        assert_eq!(err.variable, REST_SIGNING_NAME);
        let signed = rest(&[
            uri,
            (REST_AUTH, "sigv4"),
            (REST_SIGNING_NAME, "execute-api"),
        ])
        .unwrap();
        assert!(signed.signs_with_sigv4());
    }

    #[test]
    fn wrong_values_name_their_variable() {
        assert_eq!(rest(&[]).unwrap_err().variable, REST_URI);
        assert_eq!(
            rest(&[(REST_URI, "catalog:8181")]).unwrap_err().variable,
            REST_URI
        );
        let uri = (REST_URI, "http://127.0.0.1:8181");
        assert_eq!(
            rest(&[uri, (REST_AUTH, "kerberos")]).unwrap_err().variable,
            REST_AUTH
        );
        assert_eq!(
            rest(&[uri, (REST_AUTH, "bearer")]).unwrap_err().variable,
            REST_TOKEN
        );
        assert_eq!(
            rest(&[uri, (REST_CREDENTIAL, "no-colon")])
                .unwrap_err()
                .variable,
            REST_CREDENTIAL
        );
        // SigV4 without an AWS configuration to take credentials from.
        let signed =
            rest(&[(REST_URI, "https://s3tables.us-east-1.amazonaws.com/iceberg")]).unwrap();
        assert_eq!(signed.config(None).unwrap_err().variable, REST_AUTH);
    }
}
