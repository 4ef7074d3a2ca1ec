//! PostgreSQL's errors as the store's: a [`StorageKind`] and the error itself as the cause.

use alert_core::{JobStoreError, StorageError, StorageKind};

/// A database error as a storage failure. The server's SQLSTATE class says which kind: the
/// connection's classes (`08`, `57P`) and an I/O error are [`StorageKind::Unavailable`],
/// insufficient resources (`53`: a full disk, too many connections) [`StorageKind::Io`], data
/// corruption (`XX001`, `XX002`) [`StorageKind::Corrupt`], a deadlock (`40P01`) or a
/// serialization failure (`40001`) [`StorageKind::Contended`], the rest [`StorageKind::Broken`].
pub(super) fn db(e: tokio_postgres::Error) -> JobStoreError {
    let kind = match e.code().map(tokio_postgres::error::SqlState::code) {
        None => StorageKind::Unavailable,
        Some(code) if code.starts_with("08") || code.starts_with("57P") => StorageKind::Unavailable,
        Some(code) if code.starts_with("53") => StorageKind::Io,
        Some("XX001" | "XX002") => StorageKind::Corrupt,
        Some("40P01" | "40001") => StorageKind::Contended,
        Some(_) => StorageKind::Broken,
    };
    let message = match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}", db.message()),
        None => format!("PostgreSQL: {e}"),
    };
    JobStoreError::Storage(StorageError::new(kind, message).with_source(e))
}

/// A connection the pool could not give.
pub(super) fn pool(e: deadpool_postgres::PoolError) -> JobStoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db(e),
        other => JobStoreError::Storage(
            StorageError::new(
                StorageKind::Unavailable,
                format!("no connection to PostgreSQL: {other}"),
            )
            .with_source(other),
        ),
    }
}

/// How many times a batch that lost a race with another replica is run again at once.
pub(super) const CONTENDED_RETRIES: usize = 3;

/// Whether `result` lost a race with another writer, and may be run again at once.
pub(super) fn contended<T>(result: &Result<T, JobStoreError>) -> bool {
    matches!(result, Err(e) if e.storage_kind() == Some(StorageKind::Contended))
}
