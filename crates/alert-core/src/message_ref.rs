//! Where publishers remember what a target called a message, so a resolve can update it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::publisher::BoxFuture;

/// A target's reference to a message it created: a Slack `channel` and `ts`, or a Rootly alert id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageRef {
    /// Where the message lives (a Slack channel id); empty when the target has no such notion.
    pub container: String,
    /// The message's id (a Slack `ts`, a Rootly alert id).
    pub id: String,
}

impl MessageRef {
    /// A reference.
    #[must_use]
    pub fn new(container: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            container: container.into(),
            id: id.into(),
        }
    }
}

/// Keeps [`MessageRef`]s by (target, fingerprint).
///
/// Publishers that update their first message on resolve (Slack bot mode, Rootly) store the
/// reference here. The in-memory [`InMemoryMessageRefs`] serves tests and embedders; the server
/// uses the durable store in the queue's file, so resolves work after a restart.
pub trait MessageRefStore: Send + Sync + 'static {
    /// The stored reference, if any.
    fn get<'a>(
        &'a self,
        target: &'a str,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'a, Option<MessageRef>>;

    /// Stores a reference, replacing any earlier one.
    fn put<'a>(
        &'a self,
        target: &'a str,
        fingerprint: Fingerprint,
        reference: MessageRef,
    ) -> BoxFuture<'a, ()>;

    /// Forgets a reference.
    fn remove<'a>(&'a self, target: &'a str, fingerprint: Fingerprint) -> BoxFuture<'a, ()>;
}

/// A [`MessageRefStore`] in memory: lost on restart.
#[derive(Debug, Default)]
pub struct InMemoryMessageRefs {
    refs: Mutex<HashMap<(String, Fingerprint), MessageRef>>,
}

impl InMemoryMessageRefs {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Fingerprint), MessageRef>> {
        self.refs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MessageRefStore for InMemoryMessageRefs {
    fn get<'a>(
        &'a self,
        target: &'a str,
        fingerprint: Fingerprint,
    ) -> BoxFuture<'a, Option<MessageRef>> {
        let found = self.lock().get(&(target.to_owned(), fingerprint)).cloned();
        Box::pin(async move { found })
    }

    fn put<'a>(
        &'a self,
        target: &'a str,
        fingerprint: Fingerprint,
        reference: MessageRef,
    ) -> BoxFuture<'a, ()> {
        self.lock()
            .insert((target.to_owned(), fingerprint), reference);
        Box::pin(async {})
    }

    fn remove<'a>(&'a self, target: &'a str, fingerprint: Fingerprint) -> BoxFuture<'a, ()> {
        self.lock().remove(&(target.to_owned(), fingerprint));
        Box::pin(async {})
    }
}
