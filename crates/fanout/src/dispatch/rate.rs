//! The per-target token bucket, and the per-kind default rate limits.

use std::time::Duration;

use alert_core::{RateLimit, Target, TargetKind};
use tokio::time::Instant;

/// The rate limit a target's lane applies: the target's own `rate_limit` when it has one, else its
/// kind's default. PagerDuty allows 120 events a minute per routing key; Rootly 50 alerts a minute
/// per API key; a Slack incoming webhook about one message a second; a Teams webhook four
/// requests a second; an incident.io alert source 120 events a minute; a Telegram bot 20 messages
/// a minute in a group. Slack in bot mode (its settings name a `token` or `token_file`) and
/// every other kind are unlimited by default. `None` means unlimited.
#[must_use]
pub fn default_rate_limit(target: &Target) -> Option<RateLimit> {
    if target.rate_limit.is_some() {
        return target.rate_limit;
    }
    match target.kind {
        TargetKind::Pagerduty => Some(RateLimit { per_minute: 120 }),
        // Rootly ingests at most 50 alerts a minute per source and API key by default
        // (https://docs.rootly.com/alerts).
        TargetKind::Rootly => Some(RateLimit { per_minute: 50 }),
        // Teams throttles a webhook sent more than four requests a second
        // (learn.microsoft.com, "Create an Incoming Webhook").
        TargetKind::Msteams => Some(RateLimit { per_minute: 240 }),
        // incident.io accepts 120 events a minute per alert source
        // (https://docs.incident.io/incidents/auto-create).
        TargetKind::Incidentio => Some(RateLimit { per_minute: 120 }),
        // A bot may send 20 messages a minute to a group
        // (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this).
        TargetKind::Telegram => Some(RateLimit { per_minute: 20 }),
        TargetKind::Slack => {
            let settings = target.settings.map();
            let bot = settings.contains_key("token") || settings.contains_key("token_file");
            (!bot).then_some(RateLimit { per_minute: 60 })
        }
        _ => None,
    }
}

/// How many units of credit one token is worth: credit grows by `per_minute` units per
/// nanosecond, so a token is a minute's worth of nanoseconds. Whole-number credit keeps the bucket
/// exact under tokio's paused clock, where a float could leave a token a rounding error short.
const UNITS_PER_TOKEN: u128 = 60 * 1_000_000_000;

/// A token bucket that refills `per_minute / 60` tokens a second up to a capacity of
/// `max(1, ceil(per_minute / 60))`, so bursts stay within about one second's worth.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    per_minute: u128,
    capacity: u128,
    credit: u128,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket for `limit`. A limit of 0 per minute is treated as 1 per minute: a lane must
    /// never stall for good, and the configuration rejects 0 anyway.
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        let per_minute = u128::from(limit.per_minute.max(1));
        let capacity_tokens = per_minute.div_ceil(60).max(1);
        let capacity = capacity_tokens * UNITS_PER_TOKEN;
        Self {
            limit,
            per_minute,
            capacity,
            credit: capacity,
            updated: now,
        }
    }

    /// The limit this bucket enforces.
    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_nanos();
        self.credit = self
            .credit
            .saturating_add(elapsed.saturating_mul(self.per_minute))
            .min(self.capacity);
        self.updated = now;
    }

    /// Whole tokens available at `now`.
    pub(crate) fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        usize::try_from(self.credit / UNITS_PER_TOKEN).unwrap_or(usize::MAX)
    }

    /// Whether the bucket is as full as a new one.
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.credit >= self.capacity
    }

    /// Takes one token. Callers check [`available`](Self::available) first; taking from an empty
    /// bucket takes nothing.
    pub(crate) fn take(&mut self, now: Instant) {
        self.refill(now);
        self.credit = self.credit.saturating_sub(UNITS_PER_TOKEN);
    }

    /// When the next whole token will be available (now, if one is).
    pub(crate) fn next_token_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        let missing = UNITS_PER_TOKEN.saturating_sub(self.credit);
        let nanos = missing.div_ceil(self.per_minute);
        now + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alert_core::{KindSettings, TargetName};

    fn target(kind: TargetKind) -> Target {
        Target::new(TargetName::new("t").unwrap(), kind)
    }

    #[test]
    fn defaults_per_kind() {
        assert_eq!(
            default_rate_limit(&target(TargetKind::Pagerduty)),
            Some(RateLimit { per_minute: 120 })
        );
        assert_eq!(
            default_rate_limit(&target(TargetKind::Slack)),
            Some(RateLimit { per_minute: 60 })
        );
        let mut bot = target(TargetKind::Slack);
        let mut settings = serde_json::Map::new();
        settings.insert("token_file".into(), "/run/slack".into());
        bot.settings = KindSettings::new(settings);
        assert_eq!(default_rate_limit(&bot), None);
        assert_eq!(
            default_rate_limit(&target(TargetKind::Rootly)),
            Some(RateLimit { per_minute: 50 })
        );
        assert_eq!(default_rate_limit(&target(TargetKind::Webhook)), None);
        for (kind, per_minute) in [
            (TargetKind::Msteams, Some(240)),
            (TargetKind::Incidentio, Some(120)),
            (TargetKind::Telegram, Some(20)),
            (TargetKind::Opsgenie, None),
            (TargetKind::Discord, None),
            (TargetKind::Email, None),
        ] {
            let limit = per_minute.map(|per_minute| RateLimit { per_minute });
            assert_eq!(default_rate_limit(&target(kind)), limit, "{kind}");
        }
        let mut own = target(TargetKind::Webhook);
        own.rate_limit = Some(RateLimit { per_minute: 5 });
        assert_eq!(default_rate_limit(&own), Some(RateLimit { per_minute: 5 }));
    }

    #[test]
    fn bucket_starts_full_and_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit { per_minute: 120 }, start);
        assert_eq!(bucket.available(start), 2);
        bucket.take(start);
        bucket.take(start);
        assert_eq!(bucket.available(start), 0);
        let next = bucket.next_token_at(start);
        assert_eq!(next - start, Duration::from_millis(500));
        assert_eq!(bucket.available(next), 1);
        // Credit never grows past the capacity.
        assert_eq!(bucket.available(start + Duration::from_secs(3600)), 2);
    }

    #[test]
    fn slow_limits_have_a_capacity_of_one() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit { per_minute: 6 }, start);
        assert_eq!(bucket.available(start), 1);
        bucket.take(start);
        assert_eq!(bucket.next_token_at(start) - start, Duration::from_secs(10));
    }
}
