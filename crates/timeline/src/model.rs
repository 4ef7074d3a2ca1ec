//! The reference model: a timeline of events, what each target must end up holding, and what it
//! must never have seen. Pure: no I/O, no clock; times are seconds from the timeline's start.

use std::fmt::Write as _;

/// How long Prometheus's re-sends are apart, and the `endsAt` it sets: 4 resend intervals ahead.
pub const RESEND_SECS: u32 = 60;
/// The `endsAt` Prometheus sets on each re-send, from the send.
pub const PROMETHEUS_END_SECS: u32 = 4 * RESEND_SECS;
/// The server's `resolve_timeout`: the end of an API v2 alert sent without `endsAt`.
pub const RESOLVE_TIMEOUT_SECS: u32 = 300;
/// Every target's `repeat_interval`.
pub const REPEAT_SECS: u32 = 4 * 3600;
/// How long the harness runs on after `length`, every target up, so the queue drains (the
/// longest backoff is `max_backoff`, 5 minutes). Sources that still fire keep sending.
pub const DRAIN_SECS: u32 = 1500;
/// How often Prometheus re-sends a resolved alert after it resolved (and how many times).
pub const RESOLVED_RESENDS: u32 = 3;

/// Where an occurrence comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `POST /api/v2/alerts`, re-sent every [`RESEND_SECS`] while it fires. With `explicit_end`
    /// each send carries `endsAt` = send + [`PROMETHEUS_END_SECS`], as Prometheus does; without,
    /// ingest gives it send + [`RESOLVE_TIMEOUT_SECS`].
    ApiV2 {
        /// The sender sets `endsAt`.
        explicit_end: bool,
    },
    /// Alertmanager's webhook: one firing with no end, repeated every [`REPEAT_SECS`], and the
    /// resolve Alertmanager sends itself.
    Webhook,
}

/// How an occurrence ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The source sends the resolve at this second.
    Resolved(u32),
    /// The source stops sending at this second (API v2 only): the alert lapses once its last
    /// `endsAt` passes.
    Silent(u32),
    /// It still fires when the timeline ends.
    Never,
}

/// One occurrence of an alert: one `startsAt`, from its start to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// Which alert (its `alertname` is `A<alert>`).
    pub alert: u8,
    /// Where it comes from.
    pub source: Source,
    /// Its start, which is also its `startsAt`.
    pub start: u32,
    /// How it ends.
    pub end: End,
}

/// What a target does for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answers 503.
    Down,
    /// Answers after this many seconds.
    Slow(u32),
    /// Answers 429, with `Retry-After` in seconds when `Some`.
    RateLimited(Option<u32>),
}

/// A target's fault over `[from, until)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Which target (named `t<target>`).
    pub target: u8,
    /// From this second.
    pub from: u32,
    /// Until this second.
    pub until: u32,
    /// What it does.
    pub fault: Fault,
}

/// A whole timeline. Occurrences of one alert follow each other; every fault ends by `length`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// How many targets (each a webhook target with every alert's jobs).
    pub targets: u8,
    /// The occurrences.
    pub occurrences: Vec<Occurrence>,
    /// The targets' faults.
    pub faults: Vec<Window>,
    /// When the server is killed (`kill -9`: no attempt settles) and started again.
    pub restarts: Vec<u32>,
    /// The last second of events; the harness then runs on until the queue is drained.
    pub length: u32,
}

/// One message a source sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Send {
    /// When.
    pub at: u32,
    /// Which occurrence.
    pub occurrence: usize,
    /// `Some(end)` for a resolve (`endsAt` = end); `None` for a firing.
    pub resolved_at: Option<u32>,
}

impl Occurrence {
    /// The second the source stops holding it firing: its resolve, or the last `endsAt` it sent
    /// before it went silent; `None` while it still fires.
    #[must_use]
    pub fn ended_at(&self) -> Option<u32> {
        match (self.end, self.source) {
            (End::Resolved(at), _) => Some(at),
            (End::Silent(at), Source::ApiV2 { explicit_end }) => {
                let last_send =
                    self.start + (at.saturating_sub(self.start + 1) / RESEND_SECS) * RESEND_SECS;
                let lapse = if explicit_end {
                    PROMETHEUS_END_SECS
                } else {
                    RESOLVE_TIMEOUT_SECS
                };
                Some(last_send + lapse)
            }
            // A webhook source that goes silent is an Alertmanager gone for good: with
            // `webhook_resolve_timeout` off, the alert stays firing.
            (End::Silent(_) | End::Never, _) => None,
        }
    }
}

impl Timeline {
    /// Every message the sources send, in time order.
    #[must_use]
    pub fn sends(&self) -> Vec<Send> {
        let mut sends = Vec::new();
        for (index, o) in self.occurrences.iter().enumerate() {
            let firing_until = match o.end {
                End::Resolved(at) | End::Silent(at) => at,
                End::Never => self.length + DRAIN_SECS,
            };
            let every = match o.source {
                Source::ApiV2 { .. } => RESEND_SECS,
                Source::Webhook => REPEAT_SECS,
            };
            let mut at = o.start;
            while at < firing_until {
                sends.push(Send {
                    at,
                    occurrence: index,
                    resolved_at: None,
                });
                at += every;
            }
            if let End::Resolved(end) = o.end {
                let resends = match o.source {
                    Source::ApiV2 { .. } => RESOLVED_RESENDS,
                    Source::Webhook => 1,
                };
                for k in 0..resends {
                    sends.push(Send {
                        at: end + k * RESEND_SECS,
                        occurrence: index,
                        resolved_at: Some(end),
                    });
                }
            }
        }
        sends.sort_by_key(|s| (s.at, s.occurrence));
        sends
    }

    /// Whether `target` had a fault covering the whole firing of `o` (give or take `slack`
    /// seconds of backoff after the fault).
    fn faulted_through(&self, target: u8, o: &Occurrence, slack: u32) -> bool {
        let Some(ended) = o.ended_at() else {
            return false;
        };
        self.faults.iter().any(|w| {
            w.target == target
                && matches!(w.fault, Fault::Down | Fault::RateLimited(_))
                && w.from <= o.start + 1
                && w.until + slack >= ended
        }) || self
            .restarts
            .iter()
            .any(|&r| r <= o.start + 1 && r + slack >= ended)
    }

    /// Renders the timeline as Rust, to paste as a regression test.
    #[must_use]
    pub fn to_rust(&self) -> String {
        let mut out = String::from("Timeline {\n");
        let _ = writeln!(out, "    targets: {},", self.targets);
        out.push_str("    occurrences: vec![\n");
        for o in &self.occurrences {
            let _ = writeln!(
                out,
                "        Occurrence {{ alert: {}, source: Source::{:?}, start: {}, end: End::{:?} }},",
                o.alert, o.source, o.start, o.end
            );
        }
        out.push_str("    ],\n    faults: vec![\n");
        for w in &self.faults {
            let _ = writeln!(
                out,
                "        Window {{ target: {}, from: {}, until: {}, fault: Fault::{:?} }},",
                w.target, w.from, w.until, w.fault
            );
        }
        let _ = writeln!(out, "    ],\n    restarts: vec!{:?},", self.restarts);
        let _ = writeln!(out, "    length: {},\n}}", self.length);
        out
    }
}

/// What one target received: a request it accepted (or, slow, took in before it answered).
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// When, in seconds from the timeline's start.
    pub at: f64,
    /// The target.
    pub target: u8,
    /// The alert.
    pub alert: u8,
    /// `firing` or `resolved`, as published.
    pub status: String,
    /// The published `starts_at`, in seconds from the timeline's start: which occurrence.
    pub starts_at: u32,
    /// The delivery's `Idempotency-Key`: retries of one delivery share it.
    pub key: String,
}

/// A broken invariant, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// The violations and the timeline as Rust, for a failing test's message.
#[must_use]
pub fn report(timeline: &Timeline, violations: &[Violation]) -> String {
    let lines: Vec<&str> = violations.iter().map(|v| v.0.as_str()).collect();
    format!(
        "{}\n\nthe timeline, to paste as a regression test:\n{}",
        lines.join("\n"),
        timeline.to_rust()
    )
}

/// Checks what the targets received against the timeline: the invariants of the suite.
///
/// 1. A target never gets a resolve for an occurrence the source still holds firing.
/// 2. The last state a target gets for an alert is the source's last state (the queue is
///    drained and every target is up when the harness stops).
/// 3. No resolve arrives without a firing of its occurrence before it, except when the target's
///    outage covered the occurrence's whole firing (a known gap, see the crate docs).
/// 4. No firing of an occurrence arrives after its resolve.
/// 5. Within `repeat_interval`, at most one firing delivery (by idempotency key) per occurrence.
#[must_use]
pub fn check(timeline: &Timeline, received: &[Received]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut fail = |text: String| violations.push(Violation(text));
    for target in 0..timeline.targets {
        let alerts: std::collections::BTreeSet<u8> =
            timeline.occurrences.iter().map(|o| o.alert).collect();
        for alert in alerts {
            let got: Vec<&Received> = received
                .iter()
                .filter(|r| r.target == target && r.alert == alert)
                .collect();
            let occurrences: Vec<&Occurrence> = timeline
                .occurrences
                .iter()
                .filter(|o| o.alert == alert)
                .collect();
            for r in &got {
                let Some(o) = occurrences.iter().find(|o| o.start == r.starts_at) else {
                    fail(format!("t{target} got {r:?}, of no occurrence"));
                    continue;
                };
                let ended = o.ended_at();
                if r.status == "resolved" {
                    // 1.
                    if ended.is_none_or(|e| f64::from(e) > r.at + 1e-6) {
                        fail(format!(
                            "t{target} got a resolve of A{alert}@{} at {:.1}s while the source \
                             held it firing (it ends at {ended:?})",
                            o.start, r.at
                        ));
                    }
                    // 3.
                    let fired_before = got
                        .iter()
                        .any(|f| f.status == "firing" && f.starts_at == o.start && f.at <= r.at);
                    if !fired_before && !timeline.faulted_through(target, o, 900) {
                        fail(format!(
                            "t{target} got a resolve of A{alert}@{} at {:.1}s without a firing \
                             before it",
                            o.start, r.at
                        ));
                    }
                } else {
                    // 4.
                    if let Some(resolve) = got
                        .iter()
                        .find(|x| x.status == "resolved" && x.starts_at == o.start && x.at < r.at)
                    {
                        fail(format!(
                            "t{target} got a firing of A{alert}@{} at {:.1}s after its resolve at \
                             {:.1}s",
                            o.start, r.at, resolve.at
                        ));
                    }
                }
            }
            // 5.
            for o in &occurrences {
                let mut firings: Vec<(f64, &str)> = got
                    .iter()
                    .filter(|r| r.status == "firing" && r.starts_at == o.start)
                    .map(|r| (r.at, r.key.as_str()))
                    .collect();
                firings.sort_by(|a, b| a.0.total_cmp(&b.0));
                firings.dedup_by(|b, a| a.1 == b.1);
                for pair in firings.windows(2) {
                    if pair[1].0 - pair[0].0 < f64::from(REPEAT_SECS) - 1.0 {
                        fail(format!(
                            "t{target} got two firings of A{alert}@{} within repeat_interval, at \
                             {:.1}s and {:.1}s",
                            o.start, pair[0].0, pair[1].0
                        ));
                    }
                }
            }
            // 2.
            let Some(last) = occurrences.last() else {
                continue;
            };
            let final_firing = last.ended_at().is_none();
            let last_got = got
                .iter()
                .max_by(|a, b| a.at.total_cmp(&b.at).then(a.starts_at.cmp(&b.starts_at)));
            match (final_firing, last_got) {
                (true, Some(r)) if r.status == "firing" && r.starts_at == last.start => {}
                (false, Some(r)) if r.status == "resolved" => {}
                // Nothing of a finished alert: allowed only where its firing fell in an outage
                // and so was never sent (then its resolve may be dropped too).
                (false, None) if timeline.faulted_through(target, last, 900) => {}
                (_, r) => fail(format!(
                    "t{target} ends holding {:?} for A{alert}; the source's last state is {}",
                    r.map(|r| (&r.status, r.starts_at)),
                    if final_firing { "firing" } else { "resolved" }
                )),
            }
        }
    }
    violations
}
