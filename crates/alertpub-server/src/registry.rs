//! Which publisher crate builds which kind of target.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use alert_core::{MessageRefStore, Publisher, Target, TargetKind, TargetName};
use discovery::PublisherFactory;
use publisher_http::{BuildContext, BuildError, HttpClient};

/// A kind's constructor: each publisher crate's `from_settings`.
type Build = fn(&alert_core::KindSettings, &BuildContext) -> Result<Arc<dyn Publisher>, BuildError>;

/// Maps each [`TargetKind`] to its publisher crate, sharing one HTTP client and one message-ref
/// store among every publisher it builds.
pub(crate) struct PublisherRegistry {
    client: HttpClient,
    message_refs: Arc<dyn MessageRefStore>,
    /// The client (the shared pool under the target's claim) each target was last built with,
    /// so its health probes share the target's connection cap.
    clients: Mutex<HashMap<TargetName, HttpClient>>,
}

impl PublisherRegistry {
    pub(crate) fn new(client: HttpClient, message_refs: Arc<dyn MessageRefStore>) -> Self {
        Self {
            client,
            message_refs,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client `target` was last built with.
    pub(crate) fn client_of(&self, target: &TargetName) -> Option<HttpClient> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.get(target).cloned()
    }

    fn constructor(kind: TargetKind) -> Option<Build> {
        Some(match kind {
            TargetKind::Pagerduty => publishers_pagerduty::from_settings,
            TargetKind::Slack => publishers_slack::from_settings,
            TargetKind::Rootly => publishers_rootly::from_settings,
            TargetKind::Webhook => publishers_webhook::from_settings,
            TargetKind::Alertmanager => publishers_alertmanager::from_settings,
            TargetKind::Msteams => publishers_msteams::from_settings,
            TargetKind::Opsgenie => publishers_opsgenie::from_settings,
            TargetKind::Incidentio => publishers_incidentio::from_settings,
            TargetKind::Discord => publishers_discord::from_settings,
            TargetKind::Email => publishers_email::from_settings,
            TargetKind::Telegram => publishers_telegram::from_settings,
            _ => return None,
        })
    }
}

impl PublisherFactory for PublisherRegistry {
    fn build(&self, target: &Target) -> Result<Arc<dyn Publisher>, BuildError> {
        let build = Self::constructor(target.kind).ok_or_else(|| {
            BuildError::Settings(format!("no publisher for kind {}", target.kind))
        })?;
        let in_flight = target
            .in_flight_limit
            .unwrap_or(self.client.config().max_connections_per_host);
        let context = BuildContext::new(
            target.name.clone(),
            self.client.clone(),
            self.message_refs.clone(),
        )
        .with_in_flight(in_flight);
        let publisher = build(&target.settings, &context)?;
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.insert(target.name.clone(), context.client);
        Ok(publisher)
    }
}
