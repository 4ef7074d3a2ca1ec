//! Statements through each connection's cache of prepared statements, so a statement is parsed
//! and planned once per connection rather than at every call. Each runs in a transaction or, on
//! its own, on a pooled connection (its own transaction).

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

pub(super) async fn query<C: GenericClient + ?Sized>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

pub(super) async fn query_one<C: GenericClient + ?Sized>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_one(&statement, params).await
}

pub(super) async fn query_opt<C: GenericClient + ?Sized>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_opt(&statement, params).await
}

pub(super) async fn execute<C: GenericClient + ?Sized>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Error> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

/// Runs `statements` in order on `client`, sent together (see [`Pipeline`]); their rows.
pub(super) async fn query_all<C: GenericClient + ?Sized>(
    client: &C,
    statements: &[(&str, Vec<&(dyn ToSql + Sync)>)],
) -> Result<Vec<Vec<Row>>, Error> {
    // Prepared first: a statement not yet in the connection's cache takes a round trip of its
    // own, and the executions must leave in order.
    let mut prepared = Vec::with_capacity(statements.len());
    for (sql, _) in statements {
        prepared.push(client.prepare_cached(sql).await?);
    }
    // `try_join_all` polls its futures in order, and each sends its execution at its first
    // poll: they leave together, in order.
    futures_util::future::try_join_all(
        prepared
            .iter()
            .zip(statements)
            .map(|(statement, (_, params))| client.query(statement, params)),
    )
    .await
}

/// A statement's parameters, owned, for a [`Pipeline`].
pub(super) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Statements that need no answer but their success, sent together: each goes out before the
/// answer to the one before it arrives, and the database runs them in order. One round trip
/// for a whole op's writes instead of one per statement; the first failure fails the rest (the
/// transaction is aborted from it on).
#[derive(Default)]
pub(super) struct Pipeline {
    statements: Vec<(&'static str, Params)>,
}

impl Pipeline {
    pub(super) fn push(&mut self, sql: &'static str, params: Params) {
        self.statements.push((sql, params));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Runs the statements in order, on `client`.
    pub(super) async fn run<C: GenericClient + ?Sized>(self, client: &C) -> Result<(), Error> {
        let statements: Vec<(&str, Vec<&(dyn ToSql + Sync)>)> = self
            .statements
            .iter()
            .map(|(sql, params)| {
                let params = params
                    .iter()
                    .map(|p| -> &(dyn ToSql + Sync) { &**p })
                    .collect();
                (*sql, params)
            })
            .collect();
        query_all(client, &statements).await.map(drop)
    }
}
