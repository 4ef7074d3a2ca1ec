//! [`PgMessageRefs`]: the publishers' message references in the queue's database, so a resolve
//! finds its firing's message whichever replica sends it.

use alert_core::{BoxFuture, Fingerprint, MessageRef, MessageRefStore};
use deadpool_postgres::Pool;

use super::rows::fp;
use crate::redb_store::records::{decode, encode};

/// See the module docs. A reference that cannot be read or written is logged and treated as
/// absent: the publisher then sends a new message rather than failing the delivery.
#[derive(Clone)]
pub struct PgMessageRefs {
    pool: Pool,
}

impl std::fmt::Debug for PgMessageRefs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgMessageRefs").finish_non_exhaustive()
    }
}

impl PgMessageRefs {
    pub(super) fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn write(&self, target: &str, fingerprint: Fingerprint, reference: Option<MessageRef>) {
        let result = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            match reference {
                Some(reference) => {
                    let value = encode(&reference).map_err(|e| e.to_string())?;
                    client
                        .execute(
                            "INSERT INTO alertpub_message_refs (target, fingerprint, reference)
                             VALUES ($1, $2, $3)
                             ON CONFLICT (target, fingerprint)
                             DO UPDATE SET reference = EXCLUDED.reference",
                            &[&target, &fp(fingerprint), &value],
                        )
                        .await
                }
                None => {
                    client
                        .execute(
                            "DELETE FROM alertpub_message_refs
                             WHERE target = $1 AND fingerprint = $2",
                            &[&target, &fp(fingerprint)],
                        )
                        .await
                }
            }
            .map(drop)
            .map_err(|e| e.to_string())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(target_name = target, %error, "a message reference was not stored");
        }
    }
}

impl MessageRefStore for PgMessageRefs {
    fn get<'a>(
        &'a self,
        target: &'a str,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'a, Option<MessageRef>> {
        Box::pin(async move {
            let client = self.pool.get().await.ok()?;
            let row = client
                .query_opt(
                    "SELECT reference FROM alertpub_message_refs
                     WHERE target = $1 AND fingerprint = $2",
                    &[&target, &fp(fingerprint)],
                )
                .await
                .ok()??;
            decode(row.get(0)).ok()
        })
    }

    fn put<'a>(
        &'a self,
        target: &'a str,
        fingerprint: Fingerprint,
        reference: MessageRef,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.write(target, fingerprint, Some(reference)))
    }

    fn remove<'a>(&'a self, target: &'a str, fingerprint: Fingerprint) -> BoxFuture<'a, ()> {
        Box::pin(self.write(target, fingerprint, None))
    }
}
