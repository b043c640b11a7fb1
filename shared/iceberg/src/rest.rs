//! Any Iceberg REST catalog: an `iceberg::Catalog` that speaks the REST
//! specification with the `iceberg` crate's own types.
//!
//! Written here rather than taken from `iceberg-catalog-rest` because the
//! released crate cannot sign requests with SigV4, which S3 Tables' and Glue's
//! Iceberg endpoints require, and has no hook to add it. Requests are sent
//! over HTTPS (rustls, the system's roots) or plain HTTP, and authenticated in
//! one of the ways a catalog asks for: SigV4 with the AWS default credential
//! chain, a bearer token, or an OAuth2 client-credentials token fetched and
//! renewed here.
//!
//! The request and response bodies are the spec types themselves where the
//! `iceberg` crate has them (`Schema`, `TableMetadata`, `TableRequirement`,
//! `TableUpdate` serialise exactly as the spec's JSON); only the envelopes
//! (`LoadTableResult`, `CreateTableRequest`, ...) are declared below.
//!
//! A commit the server may have applied (a 5xx answer or a lost connection
//! after the request went out) comes back as a non-retryable error: iceberg's
//! transaction would otherwise re-apply the append on top of itself. The
//! commit stage finds out what happened by reloading the table
//! (see [`crate::catalog::append_once`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use iceberg::io::{FileIO, FileIOBuilder, StorageFactory};
use iceberg::spec::{Schema, SortOrder, TableMetadata, UnboundPartitionSpec};
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, Runtime, TableCommit,
    TableCreation, TableIdent, TableRequirement, TableUpdate,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// How requests to the catalog are authenticated.
#[derive(Clone)]
pub enum RestAuth {
    /// None (a catalog on a trusted network, or tests).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// OAuth2 client credentials exchanged for a bearer token.
    OAuth2(OAuth2ClientCredentials),
    /// AWS Signature Version 4 (S3 Tables, Glue).
    SigV4(SigV4),
}

impl fmt::Debug for RestAuth {
    // Never print a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestAuth::None => f.write_str("none"),
            RestAuth::Bearer(_) => f.write_str("bearer token"),
            RestAuth::OAuth2(c) => write!(f, "OAuth2 client {} at {}", c.client_id, c.token_uri),
            RestAuth::SigV4(s) => write!(f, "SigV4 ({} in {})", s.signing_name, s.region),
        }
    }
}

/// OAuth2's client-credentials grant.
#[derive(Clone)]
pub struct OAuth2ClientCredentials {
    /// The token endpoint (the spec's default is `<uri>/v1/oauth/tokens`).
    pub token_uri: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The scope asked for (`catalog` by convention).
    pub scope: String,
}

/// SigV4 signing settings.
#[derive(Clone, Debug)]
pub struct SigV4 {
    /// The service's signing name: `s3tables` or `glue`.
    pub signing_name: String,
    /// The region the endpoint is in.
    pub region: String,
    /// Where credentials come from (the SDK's default chain in a deployment).
    pub credentials: SharedCredentialsProvider,
}

/// Where the catalog is and how to reach it.
#[derive(Clone, Debug)]
pub struct RestCatalogConfig {
    /// The catalog's base URI, before `/v1`: `https://s3tables.us-east-1.amazonaws.com/iceberg`.
    pub uri: String,
    /// The warehouse to ask for (S3 Tables: the table bucket ARN; Glue: the
    /// account id); none lets the server pick its default.
    pub warehouse: Option<String>,
    /// How requests are authenticated.
    pub auth: RestAuth,
}

/// The signing name of an AWS Iceberg endpoint, from its host name:
/// `s3tables` for `s3tables.<region>.amazonaws.com`, `glue` for Glue's.
pub fn aws_signing_name(uri: &str) -> Option<&'static str> {
    let host = aws_host(uri)?;
    if host.starts_with("s3tables.") {
        Some("s3tables")
    } else if host.starts_with("glue.") {
        Some("glue")
    } else {
        None
    }
}

/// The region in an AWS endpoint's host name (`s3tables.eu-west-1.amazonaws.com`).
pub fn aws_region(uri: &str) -> Option<String> {
    let host = aws_host(uri)?;
    let mut labels = host.split('.');
    labels.next()?;
    labels.next().map(str::to_string)
}

fn aws_host(uri: &str) -> Option<String> {
    let url = reqwest::Url::parse(uri).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")).then_some(host)
}

/// An Iceberg REST catalog; see the module docs.
#[derive(Debug)]
pub struct RestCatalog {
    http: reqwest::Client,
    /// `<uri>/v1/` plus the server's prefix and a slash.
    base: String,
    auth: Authenticator,
    file_io: FileIO,
    runtime: Runtime,
}

impl RestCatalog {
    /// Connects: asks the server for its configuration (which may give a path
    /// prefix for the warehouse) and keeps one HTTP client for every request.
    /// Table files are read and written through `storage`.
    ///
    /// # Errors
    /// The server cannot be reached or refuses (bad credentials, unknown
    /// warehouse), or this is not called on a tokio runtime.
    pub async fn connect(
        config: RestCatalogConfig,
        storage: Arc<dyn StorageFactory>,
    ) -> Result<Self> {
        // reqwest's rustls has no crypto provider of its own here; use the
        // one the AWS SDK's client uses. Installed once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Unexpected, "building the HTTP client").with_source(e)
            })?;
        let uri = config.uri.trim_end_matches('/').to_string();
        let mut catalog = RestCatalog {
            http,
            base: format!("{uri}/v1/"),
            auth: Authenticator {
                auth: config.auth,
                token: Mutex::new(None),
            },
            file_io: FileIOBuilder::new(storage).build(),
            runtime: Runtime::try_current()?,
        };
        let query: Vec<(&str, &str)> = config
            .warehouse
            .as_deref()
            .map(|w| ("warehouse", w))
            .into_iter()
            .collect();
        let reply: CatalogConfig = catalog
            .call(Method::GET, "config", &query, None::<&()>, Op::Read)
            .await
            .map_err(|e| e.with_context("catalog", uri.clone()))?
            .json()?;
        let prefix = reply
            .overrides
            .get("prefix")
            .or_else(|| reply.defaults.get("prefix"))
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty());
        if let Some(prefix) = prefix {
            catalog.base = format!("{uri}/v1/{prefix}/");
        }
        Ok(catalog)
    }

    fn table(&self, ident: TableIdent, loaded: LoadTableResult) -> Result<Table> {
        let location = loaded.metadata_location.ok_or_else(|| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("the catalog answered {ident} with no metadata location"),
            )
        })?;
        Table::builder()
            .identifier(ident)
            .metadata_location(location)
            .metadata(loaded.metadata)
            .file_io(self.file_io.clone())
            .runtime(self.runtime.clone())
            .build()
    }

    /// Sends one request and returns the answer if it is a success; an error
    /// answer becomes iceberg's error for `op`. A 401 with OAuth2 fetches a
    /// new token and tries once more (the request was not processed).
    async fn call<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
        op: Op,
    ) -> Result<Answer> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::new(ErrorKind::DataInvalid, "encoding a request").with_source(e))?;
        let mut renewed = false;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .query(query);
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let mut request = request.build().map_err(|e| {
                Error::new(ErrorKind::DataInvalid, format!("building {method} {path}"))
                    .with_source(e)
            })?;
            self.auth.authorize(&self.http, &mut request).await?;
            let url = request.url().clone();
            let response = match self.http.execute(request).await {
                Ok(response) => response,
                Err(e) => return Err(transport_error(op, &method, &url, e)),
            };
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| transport_error(op, &method, &url, e))?;
            if status.is_success() {
                return Ok(Answer { bytes, what: url });
            }
            if status == StatusCode::UNAUTHORIZED && !renewed && self.auth.renews() {
                self.auth.forget_token().await;
                renewed = true;
                continue;
            }
            return Err(answer_error(op, &method, &url, status, &bytes));
        }
    }

    async fn load(&self, ident: &TableIdent) -> Result<Table> {
        let path = table_path(ident);
        let loaded: LoadTableResult = self
            .call(Method::GET, &path, &[], None::<&()>, Op::Read)
            .await?
            .json()?;
        self.table(ident.clone(), loaded)
    }
}

/// A successful answer's body.
struct Answer {
    bytes: bytes::Bytes,
    what: reqwest::Url,
}

impl Answer {
    fn json<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            Error::new(
                ErrorKind::DataInvalid,
                format!(
                    "the catalog's answer to {} is not what the REST spec says",
                    self.what
                ),
            )
            .with_source(e)
        })
    }
}

/// What a request does, which decides what its errors mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    CreateNamespace,
    CreateTable,
    Commit,
    Other,
}

fn transport_error(op: Op, method: &Method, url: &reqwest::Url, e: reqwest::Error) -> Error {
    if op == Op::Commit && !e.is_connect() && !e.is_builder() {
        // The request may have reached the server and been applied.
        return Error::new(
            ErrorKind::Unexpected,
            format!("commit state unknown: {method} {url} failed after it was sent: {e}"),
        )
        .with_source(e);
    }
    Error::new(ErrorKind::Unexpected, format!("{method} {url}: {e}"))
        .with_retryable(true)
        .with_source(e)
}

fn answer_error(
    op: Op,
    method: &Method,
    url: &reqwest::Url,
    status: StatusCode,
    body: &[u8],
) -> Error {
    let model = serde_json::from_slice::<ErrorResponse>(body)
        .ok()
        .map(|r| r.error);
    let detail = match &model {
        Some(m) => format!("{} ({})", m.message, m.r#type),
        None => String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    };
    let message = format!("{method} {url}: {status}: {detail}");
    let kind_name = model.as_ref().map(|m| m.r#type.as_str()).unwrap_or("");
    let (kind, retryable) = match (status.as_u16(), op) {
        (409, Op::Commit) => (ErrorKind::CatalogCommitConflicts, true),
        (409, Op::CreateTable) => (ErrorKind::TableAlreadyExists, false),
        (409, Op::CreateNamespace) => (ErrorKind::NamespaceAlreadyExists, false),
        (404, _) if kind_name.contains("Namespace") => (ErrorKind::NamespaceNotFound, false),
        (404, _) => (ErrorKind::TableNotFound, false),
        (500..=599, Op::Commit) => {
            return Error::new(
                ErrorKind::Unexpected,
                format!("commit state unknown (the server may have applied it): {message}"),
            );
        }
        (429 | 500..=599, _) => (ErrorKind::Unexpected, true),
        (401 | 403, _) => {
            return Error::new(
                ErrorKind::Unexpected,
                format!("the catalog refused the credentials: {message}"),
            );
        }
        _ => (ErrorKind::Unexpected, false),
    };
    Error::new(kind, message).with_retryable(retryable)
}

/// Adds each request's credentials.
struct Authenticator {
    auth: RestAuth,
    /// The OAuth2 token and when to renew it.
    token: Mutex<Option<(String, Option<Instant>)>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.auth.fmt(f)
    }
}

impl Authenticator {
    fn renews(&self) -> bool {
        matches!(self.auth, RestAuth::OAuth2(_))
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    async fn authorize(
        &self,
        http: &reqwest::Client,
        request: &mut reqwest::Request,
    ) -> Result<()> {
        match &self.auth {
            RestAuth::None => Ok(()),
            RestAuth::Bearer(token) => set_bearer(request, token),
            RestAuth::OAuth2(grant) => {
                let token = self.oauth2_token(http, grant).await?;
                set_bearer(request, &token)
            }
            RestAuth::SigV4(sigv4) => sign(sigv4, request).await,
        }
    }

    async fn oauth2_token(
        &self,
        http: &reqwest::Client,
        grant: &OAuth2ClientCredentials,
    ) -> Result<String> {
        let mut cached = self.token.lock().await;
        if let Some((token, renew_at)) = cached.as_ref()
            && renew_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(token.clone());
        }
        let refused = |detail: String| {
            Error::new(
                ErrorKind::Unexpected,
                format!("OAuth2 token from {}: {detail}", grant.token_uri),
            )
        };
        let response = http
            .post(&grant.token_uri)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", grant.client_id.as_str()),
                ("client_secret", grant.client_secret.as_str()),
                ("scope", grant.scope.as_str()),
            ])
            .send()
            .await
            .map_err(|e| refused(e.to_string()).with_retryable(true))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| refused(e.to_string()))?;
        if !status.is_success() {
            return Err(refused(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            )));
        }
        let reply: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| refused(format!("not a token response: {e}")))?;
        // Renew a minute early, so that no request goes out with a token
        // that expires on the way.
        let renew_at = reply
            .expires_in
            .map(|secs| Instant::now() + Duration::from_secs(secs.saturating_sub(60)));
        *cached = Some((reply.access_token.clone(), renew_at));
        Ok(reply.access_token)
    }
}

fn set_bearer(request: &mut reqwest::Request, token: &str) -> Result<()> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        Error::new(
            ErrorKind::DataInvalid,
            "the bearer token holds characters a header cannot",
        )
    })?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

/// Signs `request` (method, URL, headers so far, body) with SigV4 and adds
/// the signature headers.
async fn sign(sigv4: &SigV4, request: &mut reqwest::Request) -> Result<()> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let credentials = sigv4.credentials.provide_credentials().await.map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            "no AWS credentials to sign catalog requests with",
        )
        .with_source(e)
    })?;
    let identity = credentials.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&sigv4.region)
        .name(&sigv4.signing_name)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::new(ErrorKind::Unexpected, "SigV4 parameters").with_source(e))?
        .into();
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default()
        .to_vec();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.url().as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )
    .map_err(|e| Error::new(ErrorKind::Unexpected, "a request SigV4 cannot sign").with_source(e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| Error::new(ErrorKind::Unexpected, "signing a catalog request").with_source(e))?
        .into_parts();
    for (name, value) in instructions.headers() {
        let name = HeaderName::from_bytes(name.as_bytes());
        let value = HeaderValue::from_str(value);
        if let (Ok(name), Ok(mut value)) = (name, value) {
            value.set_sensitive(name == AUTHORIZATION || name.as_str() == "x-amz-security-token");
            request.headers_mut().insert(name, value);
        }
    }
    Ok(())
}

/// Characters kept as they are in a path segment: RFC 3986's unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `namespaces/<ns>`, levels joined by the spec's unit separator.
fn namespace_path(namespace: &NamespaceIdent) -> String {
    let joined = namespace.as_ref().join("\u{1f}");
    format!("namespaces/{}", utf8_percent_encode(&joined, SEGMENT))
}

fn table_path(table: &TableIdent) -> String {
    format!(
        "{}/tables/{}",
        namespace_path(table.namespace()),
        utf8_percent_encode(table.name(), SEGMENT)
    )
}

// The REST spec's envelopes; what they carry are the iceberg crate's types.

#[derive(Deserialize)]
struct CatalogConfig {
    #[serde(default)]
    defaults: HashMap<String, String>,
    #[serde(default)]
    overrides: HashMap<String, String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: ErrorModel,
}

#[derive(Deserialize)]
struct ErrorModel {
    message: String,
    r#type: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct NamespaceBody {
    namespace: NamespaceIdent,
    #[serde(default)]
    properties: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ListNamespacesResponse {
    namespaces: Vec<NamespaceIdent>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ListTablesResponse {
    identifiers: Vec<TableIdent>,
    next_page_token: Option<String>,
}

#[derive(Serialize)]
struct UpdateNamespaceProperties {
    removals: Vec<String>,
    updates: HashMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct CreateTableRequest {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    schema: Schema,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition_spec: Option<UnboundPartitionSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    write_order: Option<SortOrder>,
    stage_create: bool,
    properties: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct LoadTableResult {
    metadata_location: Option<String>,
    metadata: TableMetadata,
}

#[derive(Serialize)]
struct CommitTableRequest {
    identifier: TableIdent,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct RegisterTableRequest {
    name: String,
    metadata_location: String,
}

#[derive(Serialize)]
struct RenameTableRequest {
    source: TableIdent,
    destination: TableIdent,
}

#[async_trait]
impl Catalog for RestCatalog {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        let parent = parent.map(|p| p.as_ref().join("\u{1f}"));
        let mut namespaces = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(parent) = &parent {
                query.push(("parent", parent));
            }
            if let Some(page) = &page {
                query.push(("pageToken", page));
            }
            let reply: ListNamespacesResponse = self
                .call(Method::GET, "namespaces", &query, None::<&()>, Op::Read)
                .await?
                .json()?;
            namespaces.extend(reply.namespaces);
            match reply.next_page_token {
                Some(next) if !next.is_empty() => page = Some(next),
                _ => return Ok(namespaces),
            }
        }
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        let body = NamespaceBody {
            namespace: namespace.clone(),
            properties,
        };
        let reply: NamespaceBody = self
            .call(
                Method::POST,
                "namespaces",
                &[],
                Some(&body),
                Op::CreateNamespace,
            )
            .await?
            .json()?;
        Ok(Namespace::with_properties(
            reply.namespace,
            reply.properties,
        ))
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        let reply: NamespaceBody = self
            .call(
                Method::GET,
                &namespace_path(namespace),
                &[],
                None::<&()>,
                Op::Read,
            )
            .await
            .map_err(|e| as_namespace_not_found(e, namespace))?
            .json()?;
        Ok(Namespace::with_properties(
            reply.namespace,
            reply.properties,
        ))
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        match self.get_namespace(namespace).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NamespaceNotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        let body = UpdateNamespaceProperties {
            removals: Vec::new(),
            updates: properties,
        };
        let path = format!("{}/properties", namespace_path(namespace));
        self.call(Method::POST, &path, &[], Some(&body), Op::Other)
            .await
            .map_err(|e| as_namespace_not_found(e, namespace))?;
        Ok(())
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        self.call(
            Method::DELETE,
            &namespace_path(namespace),
            &[],
            None::<&()>,
            Op::Other,
        )
        .await
        .map_err(|e| as_namespace_not_found(e, namespace))?;
        Ok(())
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        let path = format!("{}/tables", namespace_path(namespace));
        let mut tables = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let query: Vec<(&str, &str)> = page.iter().map(|p| ("pageToken", p.as_str())).collect();
            let reply: ListTablesResponse = self
                .call(Method::GET, &path, &query, None::<&()>, Op::Read)
                .await
                .map_err(|e| as_namespace_not_found(e, namespace))?
                .json()?;
            tables.extend(reply.identifiers);
            match reply.next_page_token {
                Some(next) if !next.is_empty() => page = Some(next),
                _ => return Ok(tables),
            }
        }
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> Result<Table> {
        let ident = TableIdent::new(namespace.clone(), creation.name.clone());
        let mut properties = creation.properties;
        properties
            .entry("format-version".to_string())
            .or_insert_with(|| (creation.format_version as u8).to_string());
        let body = CreateTableRequest {
            name: creation.name,
            location: creation.location,
            schema: creation.schema,
            partition_spec: creation.partition_spec,
            write_order: creation.sort_order,
            stage_create: false,
            properties,
        };
        let path = format!("{}/tables", namespace_path(namespace));
        let loaded: LoadTableResult = self
            .call(Method::POST, &path, &[], Some(&body), Op::CreateTable)
            .await
            .map_err(|e| as_namespace_not_found(e, namespace))?
            .json()?;
        self.table(ident, loaded)
    }

    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        self.load(table).await
    }

    async fn drop_table(&self, table: &TableIdent) -> Result<()> {
        self.call(
            Method::DELETE,
            &table_path(table),
            &[],
            None::<&()>,
            Op::Other,
        )
        .await?;
        Ok(())
    }

    async fn purge_table(&self, table: &TableIdent) -> Result<()> {
        self.call(
            Method::DELETE,
            &table_path(table),
            &[("purgeRequested", "true")],
            None::<&()>,
            Op::Other,
        )
        .await?;
        Ok(())
    }

    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        match self
            .call(Method::HEAD, &table_path(table), &[], None::<&()>, Op::Read)
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TableNotFound | ErrorKind::NamespaceNotFound
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> Result<()> {
        let body = RenameTableRequest {
            source: src.clone(),
            destination: dest.clone(),
        };
        self.call(Method::POST, "tables/rename", &[], Some(&body), Op::Other)
            .await?;
        Ok(())
    }

    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> Result<Table> {
        let body = RegisterTableRequest {
            name: table.name().to_string(),
            metadata_location,
        };
        let path = format!("{}/register", namespace_path(table.namespace()));
        let loaded: LoadTableResult = self
            .call(Method::POST, &path, &[], Some(&body), Op::CreateTable)
            .await?
            .json()?;
        self.table(table.clone(), loaded)
    }

    async fn update_table(&self, mut commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        let body = CommitTableRequest {
            identifier: ident.clone(),
            requirements: commit.take_requirements(),
            updates: commit.take_updates(),
        };
        let committed: LoadTableResult = self
            .call(
                Method::POST,
                &table_path(&ident),
                &[],
                Some(&body),
                Op::Commit,
            )
            .await?
            .json()?;
        self.table(ident, committed)
    }
}

/// A 404 on a namespace's own path says the namespace is missing.
fn as_namespace_not_found(e: Error, namespace: &NamespaceIdent) -> Error {
    if e.kind() == ErrorKind::TableNotFound {
        Error::new(
            ErrorKind::NamespaceNotFound,
            format!("namespace {namespace:?} does not exist: {}", e.message()),
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_endpoints_name_their_signing_service_and_region() {
        let s3tables = "https://s3tables.eu-west-1.amazonaws.com/iceberg";
        assert_eq!(aws_signing_name(s3tables), Some("s3tables"));
        assert_eq!(aws_region(s3tables).as_deref(), Some("eu-west-1"));
        let glue = "https://glue.us-east-2.amazonaws.com/iceberg";
        assert_eq!(aws_signing_name(glue), Some("glue"));
        assert_eq!(aws_region(glue).as_deref(), Some("us-east-2"));
        assert_eq!(aws_signing_name("http://127.0.0.1:8181"), None);
        assert_eq!(
            aws_signing_name("https://catalog.example.com/amazonaws.com"),
            None
        );
    }

    #[test]
    fn paths_encode_namespace_levels_and_names() {
        let ns = NamespaceIdent::from_strs(["a b", "c/d"]).unwrap();
        assert_eq!(namespace_path(&ns), "namespaces/a%20b%1Fc%2Fd");
        let table = TableIdent::new(NamespaceIdent::new("otel".into()), "logs".into());
        assert_eq!(table_path(&table), "namespaces/otel/tables/logs");
    }

    #[test]
    fn errors_say_what_they_mean_for_each_request() {
        let url = reqwest::Url::parse("http://catalog/v1/x").unwrap();
        let body = br#"{"error":{"message":"no","type":"CommitFailedException","code":409}}"#;
        let conflict = answer_error(Op::Commit, &Method::POST, &url, StatusCode::CONFLICT, body);
        assert_eq!(conflict.kind(), ErrorKind::CatalogCommitConflicts);
        assert!(conflict.retryable());
        let unknown = answer_error(
            Op::Commit,
            &Method::POST,
            &url,
            StatusCode::BAD_GATEWAY,
            b"",
        );
        assert!(
            !unknown.retryable(),
            "a commit that may have happened must not be retried blindly"
        );
        assert!(unknown.message().contains("commit state unknown"));
        let busy = answer_error(
            Op::Read,
            &Method::GET,
            &url,
            StatusCode::SERVICE_UNAVAILABLE,
            b"",
        );
        assert!(busy.retryable());
        let exists = answer_error(
            Op::CreateTable,
            &Method::POST,
            &url,
            StatusCode::CONFLICT,
            b"",
        );
        assert_eq!(exists.kind(), ErrorKind::TableAlreadyExists);
        let missing = br#"{"error":{"message":"x","type":"NoSuchNamespaceException","code":404}}"#;
        let missing = answer_error(Op::Read, &Method::GET, &url, StatusCode::NOT_FOUND, missing);
        assert_eq!(missing.kind(), ErrorKind::NamespaceNotFound);
    }
}
