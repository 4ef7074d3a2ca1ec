//! The structural shape of a publisher on the shared stack: a kind says how to build its request
//! from the alert and what to make of an accepted answer ([`HttpPublisher`]); [`HttpTarget`] does
//! the rest once for every kind: the [`FormatContext`], the message reference a resolve needs,
//! the send through the target's client, keeping or forgetting the reference, and the
//! [`Receipt`].
//!
//! `HttpTarget<P>` is the `Publisher` of every `P: HttpPublisher`. It is a wrapper rather than a
//! blanket `impl<P: HttpPublisher> Publisher for P`, because `Publisher` is alert-core's and a
//! blanket impl of a foreign trait over a type parameter is not allowed here (E0210).

use std::sync::Arc;

use alert_core::{
    AlertStatus, BoxFuture, BuildError, Delivery, EnrichedAlert, ErrorKind, Fingerprint,
    HealthProbe, KindSettings, MessageRef, MessageRefStore, PublishError, PublishRequest,
    Publisher, Receipt, TargetName,
};
use formatters::FormatContext;

use crate::build::BuildContext;
use crate::classify::{Classify, DefaultClassifier};
use crate::client::{HttpClient, HttpResponse};
use crate::request::HttpRequest;

/// The most follow-up requests one publish makes ([`Answer::FollowUp`]).
pub const MAX_FOLLOW_UPS: usize = 1;

/// One kind of target on the shared HTTP stack.
pub trait HttpPublisher: Send + Sync + Sized + 'static {
    /// The kind's name as configured (`pagerduty`), for Debug output.
    const KIND: &'static str;

    /// Builds the kind from a target's settings (see [`crate::parse_settings`] and
    /// [`crate::split_settings`]) and the shared context.
    ///
    /// # Errors
    /// [`BuildError`]; an unreadable credential is [`BuildError::SecretUnavailable`].
    fn build(settings: &KindSettings, context: &BuildContext) -> Result<Self, BuildError>;

    /// The request for this attempt.
    ///
    /// # Errors
    /// A formatting or request error, or a delivery that cannot be made (classified).
    fn request(&self, call: &Call<'_>) -> Result<Outgoing, PublishError>;

    /// What an accepted answer means: by default, nothing to keep.
    ///
    /// # Errors
    /// An answer the classifier let through that is still a failure.
    fn answer(&self, _call: &Call<'_>, _response: &HttpResponse) -> Result<Answer, PublishError> {
        Ok(Answer::accepted())
    }

    /// Whether a resolve needs the firing's message reference: when `true`, [`Call::original`]
    /// holds the stored reference for a resolve.
    fn threads(&self) -> bool {
        false
    }

    /// How active health checks reach the target; `None` when it cannot be probed.
    fn health_probe(&self) -> Option<HealthProbe> {
        None
    }
}

/// One attempt, as a kind sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Call<'a> {
    /// The alert.
    pub alert: &'a EnrichedAlert,
    /// The status to publish and the attempt's instant.
    pub context: FormatContext,
    /// Which delivery this is.
    pub delivery: Delivery,
    /// For a resolve to a kind that [threads](HttpPublisher::threads): the reference its firing
    /// left, when one is stored.
    pub original: Option<MessageRef>,
}

impl Call<'_> {
    /// The alert's fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.alert.alert.fingerprint()
    }

    /// Whether this attempt publishes a resolve.
    #[must_use]
    pub fn is_resolve(&self) -> bool {
        self.context.status == AlertStatus::Resolved
    }
}

/// A request and the classifier that judges its answer.
pub struct Outgoing {
    /// The request.
    pub request: HttpRequest,
    /// Its classifier.
    pub classifier: &'static dyn Classify,
}

impl From<HttpRequest> for Outgoing {
    fn from(request: HttpRequest) -> Self {
        Self {
            request,
            classifier: &DefaultClassifier,
        }
    }
}

impl Outgoing {
    /// The request, judged by `classifier`.
    #[must_use]
    pub fn classified_by(request: HttpRequest, classifier: &'static dyn Classify) -> Self {
        Self {
            request,
            classifier,
        }
    }
}

/// What an accepted answer means.
#[non_exhaustive]
pub enum Answer {
    /// The delivery is done.
    Accepted {
        /// The target's id for the message, shown in the receipt.
        message_ref: Option<String>,
        /// What happens to the alert's stored reference.
        refs: RefUpdate,
    },
    /// Send this request too (a fallback), and read its answer the same way; at most
    /// [`MAX_FOLLOW_UPS`] times.
    FollowUp(Box<Outgoing>),
}

impl Answer {
    /// Done, with nothing to keep.
    #[must_use]
    pub const fn accepted() -> Self {
        Self::Accepted {
            message_ref: None,
            refs: RefUpdate::Unchanged,
        }
    }

    /// Done: keep `reference` for the alert's resolve, and show its id in the receipt.
    #[must_use]
    pub fn keep(reference: MessageRef) -> Self {
        Self::Accepted {
            message_ref: Some(reference.id.clone()),
            refs: RefUpdate::Keep(reference),
        }
    }
}

/// What happens to an alert's stored message reference after an accepted answer.
#[non_exhaustive]
pub enum RefUpdate {
    /// Nothing.
    Unchanged,
    /// Store this one (a firing's new message).
    Keep(MessageRef),
    /// Forget it (the resolve closed what it referred to).
    Forget,
}

/// The [`Publisher`] of one target of kind `P`.
pub struct HttpTarget<P> {
    kind: P,
    target: TargetName,
    client: HttpClient,
    refs: Arc<dyn MessageRefStore>,
}

impl<P> std::fmt::Debug for HttpTarget<P>
where
    P: HttpPublisher,
{
    /// The target and its kind only: a kind's settings hold its credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTarget")
            .field("kind", &P::KIND)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<P: HttpPublisher> HttpTarget<P> {
    /// The target of kind `P` that `settings` describe.
    ///
    /// # Errors
    /// [`HttpPublisher::build`]'s.
    pub fn build(settings: &KindSettings, context: &BuildContext) -> Result<Self, BuildError> {
        Ok(Self {
            kind: P::build(settings, context)?,
            target: context.target.clone(),
            client: context.client.clone(),
            refs: context.message_refs.clone(),
        })
    }

    /// The kind.
    #[must_use]
    pub fn kind(&self) -> &P {
        &self.kind
    }

    async fn publish_call(&self, request: PublishRequest<'_>) -> Result<Receipt, PublishError> {
        let context = FormatContext::new(request.status, request.at);
        let fingerprint = request.alert.alert.fingerprint();
        let original = if context.status == AlertStatus::Resolved && self.kind.threads() {
            self.refs.get(self.target.as_str(), fingerprint).await
        } else {
            None
        };
        let call = Call {
            alert: request.alert,
            context,
            delivery: request.delivery,
            original,
        };
        let mut outgoing = self.kind.request(&call)?;
        for _ in 0..=MAX_FOLLOW_UPS {
            let response = self
                .client
                .send(outgoing.request, outgoing.classifier)
                .await?;
            match self.kind.answer(&call, &response)? {
                Answer::Accepted { message_ref, refs } => {
                    match refs {
                        RefUpdate::Unchanged => {}
                        RefUpdate::Keep(reference) => {
                            self.refs
                                .put(self.target.as_str(), fingerprint, reference)
                                .await;
                        }
                        RefUpdate::Forget => {
                            self.refs.remove(self.target.as_str(), fingerprint).await;
                        }
                    }
                    let mut receipt = Receipt::with_status(response.status.as_u16());
                    receipt.message_ref = message_ref;
                    return Ok(receipt);
                }
                Answer::FollowUp(next) => outgoing = *next,
            }
        }
        Err(PublishError::new(
            ErrorKind::Transient,
            "the target asked for more follow-up requests than one publish makes",
        ))
    }
}

impl<P: HttpPublisher> Publisher for HttpTarget<P> {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Receipt, PublishError>> {
        Box::pin(self.publish_call(request))
    }

    fn health_probe(&self) -> Option<HealthProbe> {
        self.kind.health_probe()
    }
}

/// Builds the [`Publisher`] of a target of kind `P`.
///
/// # Errors
/// [`HttpPublisher::build`]'s.
pub fn build_publisher<P: HttpPublisher>(
    settings: &KindSettings,
    context: &BuildContext,
) -> Result<Arc<dyn Publisher>, BuildError> {
    Ok(Arc::new(HttpTarget::<P>::build(settings, context)?))
}

/// Declares a publisher crate's `from_settings`, the constructor the server's registry and the
/// crate's tests call, for the crate's [`HttpPublisher`].
#[macro_export]
macro_rules! from_settings {
    ($kind:ty) => {
        /// Builds the publisher from a target's settings.
        ///
        /// # Errors
        /// [`alert_core::BuildError`]; an unreadable credential is
        /// [`alert_core::BuildError::SecretUnavailable`].
        pub fn from_settings(
            settings: &alert_core::KindSettings,
            context: &$crate::BuildContext,
        ) -> Result<std::sync::Arc<dyn alert_core::Publisher>, alert_core::BuildError> {
            $crate::build_publisher::<$kind>(settings, context)
        }
    };
}
