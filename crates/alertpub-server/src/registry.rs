//! Which publisher crate builds which kind of target.

use std::sync::Arc;

use alert_core::{MessageRefStore, Publisher, Target, TargetKind};
use discovery::PublisherFactory;
use publisher_http::{BuildContext, BuildError, HttpClient};

/// A kind's constructor: each publisher crate's `from_settings`.
type Build = fn(&alert_core::KindSettings, &BuildContext) -> Result<Arc<dyn Publisher>, BuildError>;

/// Maps each [`TargetKind`] to its publisher crate, sharing one HTTP client and one message-ref
/// store among every publisher it builds.
pub(crate) struct PublisherRegistry {
    client: HttpClient,
    message_refs: Arc<dyn MessageRefStore>,
}

impl PublisherRegistry {
    pub(crate) fn new(client: HttpClient, message_refs: Arc<dyn MessageRefStore>) -> Self {
        Self {
            client,
            message_refs,
        }
    }

    fn constructor(kind: TargetKind) -> Option<Build> {
        Some(match kind {
            TargetKind::Pagerduty => publishers_pagerduty::from_settings,
            TargetKind::Slack => publishers_slack::from_settings,
            TargetKind::Rootly => publishers_rootly::from_settings,
            TargetKind::Webhook => publishers_webhook::from_settings,
            TargetKind::Alertmanager => publishers_alertmanager::from_settings,
            _ => return None,
        })
    }
}

impl PublisherFactory for PublisherRegistry {
    fn build(&self, target: &Target) -> Result<Arc<dyn Publisher>, BuildError> {
        let build = Self::constructor(target.kind).ok_or_else(|| {
            BuildError::Settings(format!("no publisher for kind {}", target.kind))
        })?;
        let context = BuildContext::new(
            target.name.clone(),
            self.client.clone(),
            self.message_refs.clone(),
        );
        build(&target.settings, &context)
    }
}
