//! Which re-sends a durable store writes, and what a restart makes of the ones it did not.
//!
//! At steady state almost everything a notifier receives is a re-send of a firing alert that
//! changes nothing a target sees: Prometheus re-sends each one every minute or so, with an
//! `endsAt` a few minutes ahead (its *lead*). Such a re-send only moves the log entry's `endsAt`,
//! which decides when the sweep resolves the alert on its own. Writing that move to disk for
//! every re-send would cost a durable write per alert per minute, so a durable store keeps it in
//! memory and writes it only when a restart could not make up for it:
//!
//! - The database holds each entry's `endsAt` as it was when last written, and when that was
//!   (`seen_at`): their difference is the entry's *durable lead*.
//! - A re-send is written ([`must_write`]) when it moves `endsAt` earlier than the database
//!   holds, adds or drops an end, or is ahead of its own arrival by more than the durable lead
//!   plus [`slack`]. Otherwise it lives in memory only.
//! - A restart ([`restored_ends_at`]) grants every firing entry with an end at least the larger
//!   of its durable lead plus slack and `grace` (the server gives `resolve_timeout`) from the
//!   moment the store is loaded.
//!
//! What holds across a `kill -9`:
//! - **No false resolve.** A re-send held in memory at the crash ended at most `lead + slack`
//!   after it arrived, which was before the restart, so the restored end is not earlier than the
//!   end the lost re-send set. An alert that is still being re-sent gets a fresh `grace` to be
//!   re-sent in: a sender that re-sends more often than `resolve_timeout` is never resolved by
//!   a restart, however long the store was down.
//! - **A bounded late resolve.** An alert whose sender stopped is resolved by
//!   `max(durable endsAt, load + max(lead + slack, grace))`: at most that much after the restart,
//!   never before the end its sender last gave.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How much further ahead than its durable lead a re-send may reach and still be kept in memory
/// only: an eighth of the lead, and at least a second, so the jitter of a sender's clock and
/// of the network does not make every re-send a write.
#[must_use]
pub(crate) fn slack(lead: chrono::Duration) -> chrono::Duration {
    (lead / 8).max(chrono::Duration::seconds(1))
}

/// Whether a re-send that changed only the entry's end, from the `durable` end the database
/// holds (written at `seen_at`) to `new`, arriving at `now`, must be written: see the module
/// docs.
#[must_use]
pub(crate) fn must_write(
    durable: Option<DateTime<Utc>>,
    seen_at: DateTime<Utc>,
    new: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let (Some(durable), Some(new)) = (durable, new) else {
        return durable != new;
    };
    if new < durable {
        return true;
    }
    let lead = (durable - seen_at).max(chrono::Duration::zero());
    new - now > lead + slack(lead)
}

/// The end a restart gives a firing entry whose database record holds the `durable` end written
/// at `seen_at`, when the store is loaded at `loaded_at`: see the module docs. An entry with no
/// end keeps none.
#[must_use]
pub(crate) fn restored_ends_at(
    durable: Option<DateTime<Utc>>,
    seen_at: DateTime<Utc>,
    loaded_at: DateTime<Utc>,
    grace: Duration,
) -> Option<DateTime<Utc>> {
    let durable = durable?;
    let lead = (durable - seen_at).max(chrono::Duration::zero());
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let granted = (lead + slack(lead)).max(grace);
    let fresh = loaded_at
        .checked_add_signed(granted)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    Some(durable.max(fresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    const MIN: i64 = 60;

    #[test]
    fn a_steady_re_send_is_kept_in_memory() {
        // Written at 0 with a four-minute lead; re-sent every minute with the same lead.
        for minute in 1..100 {
            let now = at(minute * MIN);
            assert!(!must_write(
                Some(at(4 * MIN)),
                at(0),
                Some(now + chrono::Duration::minutes(4)),
                now
            ));
        }
        // Within the slack (30 s of a four-minute lead), a re-send is still not written.
        let now = at(10 * MIN);
        let within = now + chrono::Duration::seconds(4 * MIN + 30);
        assert!(!must_write(Some(at(4 * MIN)), at(0), Some(within), now));
    }

    #[test]
    fn a_re_send_that_reaches_further_or_moves_back_is_written() {
        let now = at(10 * MIN);
        let further = now + chrono::Duration::seconds(4 * MIN + 31);
        assert!(must_write(Some(at(4 * MIN)), at(0), Some(further), now));
        assert!(must_write(Some(at(4 * MIN)), at(0), Some(at(3 * MIN)), now));
        assert!(must_write(Some(at(4 * MIN)), at(0), None, now));
        assert!(must_write(None, at(0), Some(at(4 * MIN)), now));
        assert!(!must_write(None, at(0), None, now));
        // A lead of zero still has a second of slack.
        assert!(!must_write(
            Some(at(0)),
            at(0),
            Some(now + chrono::Duration::seconds(1)),
            now
        ));
        assert!(must_write(
            Some(at(0)),
            at(0),
            Some(now + chrono::Duration::seconds(2)),
            now
        ));
    }

    #[test]
    fn a_restart_never_ends_an_entry_before_a_re_send_it_lost() {
        // Every re-send the rule kept in memory, at any time before the load, ends no later than
        // the restored end.
        let grace = Duration::from_secs(5 * 60);
        let (durable, seen_at) = (at(4 * MIN), at(0));
        let loaded_at = at(30 * MIN);
        let restored = restored_ends_at(Some(durable), seen_at, loaded_at, grace).unwrap();
        for secs in (0..=30 * MIN).step_by(7) {
            let now = at(secs);
            for ahead in (0..=10 * MIN).step_by(5) {
                let new = now + chrono::Duration::seconds(ahead);
                if new >= durable && !must_write(Some(durable), seen_at, Some(new), now) {
                    assert!(
                        new <= restored,
                        "a re-send at {secs}s ending {ahead}s later"
                    );
                }
            }
        }
    }

    #[test]
    fn a_restart_grants_the_larger_of_the_lead_and_the_grace() {
        let grace = Duration::from_secs(5 * 60);
        let loaded_at = at(30 * MIN);
        // A four-minute lead (plus 30 s of slack) is shorter than the grace.
        assert_eq!(
            restored_ends_at(Some(at(4 * MIN)), at(0), loaded_at, grace),
            Some(at(35 * MIN))
        );
        // A one-hour lead (plus 7.5 minutes) is longer.
        assert_eq!(
            restored_ends_at(Some(at(60 * MIN)), at(0), loaded_at, grace),
            Some(loaded_at + chrono::Duration::seconds(67 * MIN + 30))
        );
        // An end still further ahead is kept.
        assert_eq!(
            restored_ends_at(Some(at(100 * MIN)), at(90 * MIN), loaded_at, grace),
            Some(at(100 * MIN))
        );
        assert_eq!(restored_ends_at(None, at(0), loaded_at, grace), None);
    }
}
