//! S3 Tables through its control plane: an `iceberg::Catalog` over
//! `aws-sdk-s3tables`.
//!
//! S3 Tables keeps, per table, only a pointer to the current metadata file
//! and a version token; the metadata itself is ordinary Iceberg metadata in
//! the table's own location (`s3://<id>--table-s3/`), written here through
//! the `iceberg` crate's `FileIO` (given a [`PortStorageFactory`], the
//! pipeline's own S3 client). A commit writes the next metadata file, then
//! moves the pointer with the token it loaded: a token that changed meanwhile
//! (S3 Tables' own compaction or snapshot expiry committed, or another
//! writer) answers `ConflictException`, surfaced as iceberg's retryable
//! `CatalogCommitConflicts` so that the transaction reloads and retries —
//! unless the pointer already names this commit's file: the SDK retried a
//! request whose answer was lost, and the conflict is with itself. A commit
//! the SDK gave up on is reported as of unknown outcome, never retryable.
//!
//! Only what the pipeline needs is here: namespaces and tables created on
//! first use, loads and appends. The rest answers `FeatureUnsupported`.
//!
//! [`PortStorageFactory`]: crate::storage::PortStorageFactory

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3tables::Client;
use aws_sdk_s3tables::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3tables::types::OpenTableFormat;
use iceberg::io::{FileIO, FileIOBuilder, StorageFactory};
use iceberg::spec::{TableMetadata, TableMetadataBuilder};
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, MetadataLocation, Namespace, NamespaceIdent, Result, Runtime,
    TableCommit, TableCreation, TableIdent,
};

/// A table bucket's tables; see the module docs.
#[derive(Debug)]
pub struct S3TablesCatalog {
    client: Client,
    table_bucket_arn: String,
    file_io: FileIO,
    runtime: Runtime,
}

impl S3TablesCatalog {
    /// The tables of the table bucket `table_bucket_arn`, their files reached
    /// through `storage`; tables scan on the tokio runtime this is called on.
    ///
    /// # Errors
    /// Outside a tokio runtime.
    pub fn new(
        client: Client,
        table_bucket_arn: impl Into<String>,
        storage: Arc<dyn StorageFactory>,
    ) -> Result<Self> {
        Ok(S3TablesCatalog {
            client,
            table_bucket_arn: table_bucket_arn.into(),
            file_io: FileIOBuilder::new(storage).build(),
            runtime: Runtime::try_current()?,
        })
    }

    /// The tables of `table_bucket_arn`, their files reached through the S3
    /// client `s3` (one [`otlp2parquet_aws::S3Store`] per bucket).
    ///
    /// # Errors
    /// Outside a tokio runtime.
    pub fn over_s3(
        client: Client,
        table_bucket_arn: impl Into<String>,
        s3: aws_sdk_s3::Client,
    ) -> Result<Self> {
        let storage = crate::storage::PortStorageFactory::over_s3(s3);
        Self::new(client, table_bucket_arn, Arc::new(storage))
    }

    /// The table's current metadata location (none before the first
    /// metadata is written), its version token and its warehouse location.
    async fn pointer(&self, table: &TableIdent) -> Result<(Option<String>, String, String)> {
        let reply = self
            .client
            .get_table_metadata_location()
            .table_bucket_arn(&self.table_bucket_arn)
            .namespace(namespace_name(table.namespace())?)
            .name(table.name())
            .send()
            .await
            .map_err(|e| aws_error(&format!("loading {table}"), e))?;
        Ok((
            reply.metadata_location().map(str::to_string),
            reply.version_token().to_string(),
            reply.warehouse_location().to_string(),
        ))
    }

    async fn set_pointer(
        &self,
        table: &TableIdent,
        metadata_location: &str,
        version_token: &str,
    ) -> Result<()> {
        self.client
            .update_table_metadata_location()
            .table_bucket_arn(&self.table_bucket_arn)
            .namespace(namespace_name(table.namespace())?)
            .name(table.name())
            .metadata_location(metadata_location)
            .version_token(version_token)
            .send()
            .await
            .map_err(|e| aws_error(&format!("committing {table}"), e))?;
        Ok(())
    }

    /// Whether `table`'s pointer names the metadata file `location`, or a
    /// later one that lists it in its metadata log: whether a commit that
    /// wrote `location` took effect.
    async fn points_at_or_past(&self, table: &TableIdent, location: &str) -> Result<bool> {
        let (current, _) = self.load_with_token(table).await?;
        Ok(current.metadata_location() == Some(location)
            || current
                .metadata()
                .metadata_log()
                .iter()
                .any(|entry| entry.metadata_file == location))
    }

    fn table(&self, ident: TableIdent, location: String, metadata: TableMetadata) -> Result<Table> {
        Table::builder()
            .identifier(ident)
            .metadata_location(location)
            .metadata(metadata)
            .file_io(self.file_io.clone())
            .runtime(self.runtime.clone())
            .build()
    }

    async fn load_with_token(&self, ident: &TableIdent) -> Result<(Table, String)> {
        let (location, token, _) = self.pointer(ident).await?;
        let location = location.ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!("{ident} has no metadata yet: a creation did not finish"),
            )
        })?;
        let metadata = TableMetadata::read_from(&self.file_io, &location).await?;
        Ok((self.table(ident.clone(), location, metadata)?, token))
    }
}

/// S3 Tables namespaces have one level.
fn namespace_name(namespace: &NamespaceIdent) -> Result<String> {
    match namespace.as_ref().as_slice() {
        [name] => Ok(name.clone()),
        _ => Err(Error::new(
            ErrorKind::DataInvalid,
            format!("{namespace:?}: S3 Tables namespaces have exactly one level"),
        )),
    }
}

/// An AWS error as iceberg's: not found, a conflict (retryable, so that a
/// transaction reloads and tries again), throttling and 5xx (retryable), or
/// anything else.
fn aws_error<E, R>(doing: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = e.code().unwrap_or_default().to_string();
    let message = format!(
        "{doing}: {}",
        aws_sdk_s3tables::error::DisplayErrorContext(&e)
    );
    let (kind, retryable) = match code.as_str() {
        "ConflictException" => (ErrorKind::CatalogCommitConflicts, true),
        "NotFoundException" => (ErrorKind::TableNotFound, false),
        "TooManyRequestsException" | "InternalServerErrorException" | "ServiceUnavailable" => {
            (ErrorKind::Unexpected, true)
        }
        _ => (
            ErrorKind::Unexpected,
            matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)),
        ),
    };
    Error::new(kind, message).with_retryable(retryable)
}

fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("NotFoundException")
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::FeatureUnsupported,
        format!("{what} is not supported by otlp2parquet's S3 Tables catalog"),
    )
}

#[async_trait]
impl Catalog for S3TablesCatalog {
    async fn list_namespaces(
        &self,
        _parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        Err(unsupported("listing namespaces"))
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        _properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        let result = self
            .client
            .create_namespace()
            .table_bucket_arn(&self.table_bucket_arn)
            .namespace(namespace_name(namespace)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Namespace::new(namespace.clone())),
            Err(e) if e.code() == Some("ConflictException") => Err(Error::new(
                ErrorKind::NamespaceAlreadyExists,
                format!("namespace {namespace:?} already exists"),
            )),
            Err(e) => Err(aws_error(&format!("creating namespace {namespace:?}"), e)),
        }
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        if self.namespace_exists(namespace).await? {
            Ok(Namespace::new(namespace.clone()))
        } else {
            Err(Error::new(
                ErrorKind::NamespaceNotFound,
                format!("namespace {namespace:?} does not exist"),
            ))
        }
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        let result = self
            .client
            .get_namespace()
            .table_bucket_arn(&self.table_bucket_arn)
            .namespace(namespace_name(namespace)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(aws_error(&format!("looking up namespace {namespace:?}"), e)),
        }
    }

    async fn update_namespace(
        &self,
        _namespace: &NamespaceIdent,
        _properties: HashMap<String, String>,
    ) -> Result<()> {
        Err(unsupported("updating a namespace"))
    }

    async fn drop_namespace(&self, _namespace: &NamespaceIdent) -> Result<()> {
        Err(unsupported("dropping a namespace"))
    }

    async fn list_tables(&self, _namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        Err(unsupported("listing tables"))
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        mut creation: TableCreation,
    ) -> Result<Table> {
        if creation.location.is_some() {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                "S3 Tables chooses each table's location; leave it unset",
            ));
        }
        let ident = TableIdent::new(namespace.clone(), creation.name.clone());
        let created = self
            .client
            .create_table()
            .table_bucket_arn(&self.table_bucket_arn)
            .namespace(namespace_name(namespace)?)
            .name(&creation.name)
            .format(OpenTableFormat::Iceberg)
            .send()
            .await;
        let already_exists = || {
            Error::new(
                ErrorKind::TableAlreadyExists,
                format!("table {ident} already exists"),
            )
        };
        match created {
            Ok(_) => {}
            // The table exists. If it has no metadata, a creation died between
            // CreateTable and setting the pointer: finish it, or the table
            // could never be loaded (nor created again).
            Err(e) if e.code() == Some("ConflictException") => {}
            Err(e) => return Err(aws_error(&format!("creating {ident}"), e)),
        }
        let (current, token, warehouse_location) = self.pointer(&ident).await?;
        if current.is_some() {
            return Err(already_exists());
        }
        creation.location = Some(warehouse_location.clone());
        let metadata = TableMetadataBuilder::from_table_creation(creation)?
            .build()?
            .metadata;
        let location = MetadataLocation::new_with_metadata(&warehouse_location, &metadata);
        metadata.write_to(&self.file_io, &location).await?;
        let location = location.to_string();
        match self.set_pointer(&ident, &location, &token).await {
            Ok(()) => {}
            // A concurrent creation set it first: theirs is the table.
            Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts => {
                return Err(already_exists());
            }
            Err(e) => return Err(e),
        }
        self.table(ident, location, metadata)
    }

    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        Ok(self.load_with_token(table).await?.0)
    }

    async fn drop_table(&self, _table: &TableIdent) -> Result<()> {
        Err(unsupported("dropping a table"))
    }

    async fn purge_table(&self, _table: &TableIdent) -> Result<()> {
        Err(unsupported("purging a table"))
    }

    /// Whether the table exists as an Iceberg table: one S3 Tables knows but
    /// that has no metadata yet (an unfinished creation) does not, so that
    /// creating it again finishes it.
    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        match self.pointer(table).await {
            Ok((metadata, _, _)) => Ok(metadata.is_some()),
            Err(e) if e.kind() == ErrorKind::TableNotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn rename_table(&self, _src: &TableIdent, _dest: &TableIdent) -> Result<()> {
        Err(unsupported("renaming a table"))
    }

    async fn register_table(
        &self,
        _table: &TableIdent,
        _metadata_location: String,
    ) -> Result<Table> {
        Err(unsupported("registering a table"))
    }

    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        let (current, token) = self.load_with_token(&ident).await?;
        // Checks the commit's requirements against what was loaded and
        // names the next metadata file.
        let staged = commit.apply(current)?;
        let location = MetadataLocation::from_str(staged.metadata_location_result()?)?;
        staged.metadata().write_to(&self.file_io, &location).await?;
        let location = location.to_string();
        let Err(failed) = self.set_pointer(&ident, &location, &token).await else {
            return Ok(staged);
        };
        // The SDK retries a request whose answer was lost (a 5xx, a dropped
        // connection); when the first attempt moved the pointer, the retry is
        // refused because the token moved — by this very commit. Retrying
        // the transaction would append on top of itself, so look first.
        match self.points_at_or_past(&ident, &location).await {
            Ok(true) => return Ok(staged),
            Ok(false) if failed.kind() == ErrorKind::CatalogCommitConflicts => return Err(failed),
            Ok(false) | Err(_) => {}
        }
        // The SDK gave up (5xx, throttling, the network): the update may still
        // be applied. Not retryable here; the commit stage reloads the table
        // and its commit id decides (`catalog::append_once`).
        Err(Error::new(
            ErrorKind::Unexpected,
            format!("commit state unknown (S3 Tables may have applied it): {failed}"),
        ))
    }
}
