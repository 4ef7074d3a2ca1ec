//! The notification log in memory, compact: at a fleet's scale (a million active alerts, each
//! sent to ten targets) the log is most of what the store holds, so its form decides the
//! server's memory.
//!
//! - Entries are grouped by fingerprint: one hash-table slot per alert, holding a boxed slice
//!   with one [`Packed`] entry per target it went to. An alert's targets are usually looked up
//!   together (ingest admits one alert for all its targets), and a slice has no per-entry
//!   table overhead.
//! - A target is a `u32` index into a table of names that only grows (the names the log has
//!   ever held; a handful in practice), and every time is an `i64` of nanoseconds, so an entry
//!   is 64 bytes and its key costs nothing beyond its group's.
//! - A time outside what nanoseconds since 1970 can hold in an `i64` (before 1677 or after 2262),
//!   or a leap second, cannot be packed; such an entry is kept whole in a small overflow map instead, so nothing
//!   is rounded or lost.
//!
//! Entries are handed out by value ([`CachedLog`]), decoded from their packed form, and written
//! back through [`LogMap::insert`] or [`LogMap::update`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use alert_core::{AlertStatus, Fingerprint, LogEntry, TargetName};
use chrono::{DateTime, Utc};

use super::state::{CachedLog, Key};

/// One (target, fingerprint)'s entry, packed: see the module docs.
#[derive(Clone, Copy, Debug)]
struct Packed {
    target: u32,
    /// [`RESOLVED`], [`HAS_END`], [`HAS_DURABLE_END`].
    flags: u8,
    starts_at: i64,
    ends_at: i64,
    accepted_at: i64,
    durable_ends_at: i64,
    seen_at: i64,
    sequence: u64,
    body: u64,
}

const RESOLVED: u8 = 1;
const HAS_END: u8 = 2;
const HAS_DURABLE_END: u8 = 4;

/// `None` for a time nanoseconds cannot hold, and for a leap second (chrono's sub-second
/// nanoseconds of 1e9 and more), which nanoseconds since 1970 would turn into the next second.
fn nanos(t: DateTime<Utc>) -> Option<i64> {
    if t.timestamp_subsec_nanos() >= 1_000_000_000 {
        return None;
    }
    t.timestamp_nanos_opt()
}

/// The time `n` nanoseconds after 1970. chrono finds the date of a day count with a calendar
/// computation that costs more than the rest of an entry's decoding (it was the top cost of
/// absorbing re-sends), and an entry's times, like consecutive entries', fall on one day or
/// two (an alert that started yesterday, an end past midnight): the last two days decoded are
/// kept, per thread.
fn time(n: i64) -> DateTime<Utc> {
    use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
    use std::cell::Cell;
    /// Days from 0001-01-01 (chrono's day count) to 1970-01-01.
    const UNIX_EPOCH_DAY: i64 = 719_163;
    type Days = [Option<(i64, NaiveDate)>; 2];
    thread_local! {
        static LAST_DAYS: Cell<Days> = const { Cell::new([None, None]) };
    }
    let secs = n.div_euclid(1_000_000_000);
    let nanos = n.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400) as u32;
    let date = LAST_DAYS.with(|last| {
        let [recent, older] = last.get();
        match (recent, older) {
            (Some((day, date)), _) if day == days => Some(date),
            (_, Some((day, date))) if day == days => {
                last.set([older, recent]);
                Some(date)
            }
            _ => {
                let date = i32::try_from(days + UNIX_EPOCH_DAY)
                    .ok()
                    .and_then(NaiveDate::from_num_days_from_ce_opt)?;
                last.set([Some((days, date)), recent]);
                Some(date)
            }
        }
    });
    match (
        date,
        NaiveTime::from_num_seconds_from_midnight_opt(of_day, nanos),
    ) {
        (Some(date), Some(time)) => NaiveDateTime::new(date, time).and_utc(),
        // Every i64 of nanoseconds is a date chrono can hold; this is never taken.
        _ => DateTime::from_timestamp_nanos(n),
    }
}

impl Packed {
    /// `None` when a time cannot be packed (see the module docs).
    fn pack(target: u32, c: &CachedLog) -> Option<Self> {
        let mut flags = match c.entry.status {
            AlertStatus::Firing => 0,
            AlertStatus::Resolved => RESOLVED,
        };
        let ends_at = match c.entry.ends_at {
            Some(t) => {
                flags |= HAS_END;
                nanos(t)?
            }
            None => 0,
        };
        let durable_ends_at = match c.durable_ends_at {
            Some(t) => {
                flags |= HAS_DURABLE_END;
                nanos(t)?
            }
            None => 0,
        };
        Some(Self {
            target,
            flags,
            starts_at: nanos(c.entry.starts_at)?,
            ends_at,
            accepted_at: nanos(c.entry.accepted_at)?,
            durable_ends_at,
            seen_at: nanos(c.seen_at)?,
            sequence: c.entry.sequence,
            body: c.body,
        })
    }

    fn unpack(&self) -> CachedLog {
        CachedLog {
            entry: LogEntry {
                status: if self.flags & RESOLVED == 0 {
                    AlertStatus::Firing
                } else {
                    AlertStatus::Resolved
                },
                starts_at: time(self.starts_at),
                ends_at: (self.flags & HAS_END != 0).then(|| time(self.ends_at)),
                sequence: self.sequence,
                accepted_at: time(self.accepted_at),
            },
            body: self.body,
            durable_ends_at: (self.flags & HAS_DURABLE_END != 0)
                .then(|| time(self.durable_ends_at)),
            seen_at: time(self.seen_at),
        }
    }
}

/// A hasher for keys that are already hashes (fingerprints are FNV-1a 64), and for the short
/// target names: one folded multiply per eight bytes with a per-process seed, so the table's
/// bucket bits depend on all 64 bits of the key and a sender cannot aim many fingerprints at
/// one bucket without knowing the seed. It is several times cheaper than SipHash, which a
/// lookup per admission would otherwise pay twice.
#[derive(Clone, Copy)]
pub(super) struct FoldState {
    seed: u64,
}

impl Default for FoldState {
    fn default() -> Self {
        // The standard library's per-process random keys, drawn once.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        Self { seed }
    }
}

impl BuildHasher for FoldState {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            seed: self.seed,
            hash: 0,
        }
    }
}

/// See [`FoldState`].
pub(super) struct FoldHasher {
    seed: u64,
    hash: u64,
}

impl FoldHasher {
    fn fold(&mut self, x: u64) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let product =
            u128::from(x ^ self.seed ^ self.hash) * u128::from(K ^ self.seed.rotate_left(32));
        self.hash = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.hash
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0_u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.fold(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.fold(x);
    }
}

/// The notification log in memory; see the module docs.
#[derive(Default)]
pub(crate) struct LogMap {
    names: Vec<TargetName>,
    ids: HashMap<TargetName, u32, FoldState>,
    groups: HashMap<u64, Box<[Packed]>, FoldState>,
    overflow: HashMap<Key, CachedLog>,
    len: usize,
}

impl LogMap {
    /// How many entries it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn id(&self, target: &TargetName) -> Option<u32> {
        // Admissions carry clones of the target set's own names: most lookups are the same
        // allocation, found without hashing or comparing the text.
        let ptr = target.as_str().as_ptr();
        if let Some(id) = self.names.iter().position(|n| n.as_str().as_ptr() == ptr) {
            return u32::try_from(id).ok();
        }
        self.ids.get(target).copied()
    }

    fn intern(&mut self, target: &TargetName) -> u32 {
        if let Some(id) = self.id(target) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(target.clone());
        self.ids.insert(target.clone(), id);
        id
    }

    fn packed(&self, key: &Key) -> Option<&Packed> {
        let id = self.id(&key.0)?;
        self.groups
            .get(&key.1.as_u64())?
            .iter()
            .find(|p| p.target == id)
    }

    /// The entry of `key`.
    pub(crate) fn get(&self, key: &Key) -> Option<CachedLog> {
        match self.packed(key) {
            Some(p) => Some(p.unpack()),
            None if self.overflow.is_empty() => None,
            None => self.overflow.get(key).cloned(),
        }
    }

    /// Whether `key` has an entry.
    pub(crate) fn contains_key(&self, key: &Key) -> bool {
        self.packed(key).is_some() || self.overflow.contains_key(key)
    }

    /// Stores the entry of `key`, returning the one it replaced.
    pub(crate) fn insert(&mut self, key: Key, cached: CachedLog) -> Option<CachedLog> {
        let id = self.intern(&key.0);
        let fingerprint = key.1.as_u64();
        let Some(packed) = Packed::pack(id, &cached) else {
            let old = self.remove_packed(id, fingerprint);
            let replaced = self.overflow.insert(key, cached);
            if old.is_none() && replaced.is_none() {
                self.len += 1;
            }
            return old.or(replaced);
        };
        let from_overflow = if self.overflow.is_empty() {
            None
        } else {
            self.overflow.remove(&key)
        };
        let group = self.groups.entry(fingerprint).or_default();
        if let Some(slot) = group.iter_mut().find(|p| p.target == id) {
            let old = slot.unpack();
            *slot = packed;
            return Some(old);
        }
        let mut grown = Vec::with_capacity(group.len() + 1);
        grown.extend_from_slice(group);
        grown.push(packed);
        *group = grown.into_boxed_slice();
        if from_overflow.is_none() {
            self.len += 1;
        }
        from_overflow
    }

    fn remove_packed(&mut self, id: u32, fingerprint: u64) -> Option<CachedLog> {
        let group = self.groups.get_mut(&fingerprint)?;
        let at = group.iter().position(|p| p.target == id)?;
        let old = group[at].unpack();
        if group.len() == 1 {
            self.groups.remove(&fingerprint);
        } else {
            let mut kept = Vec::with_capacity(group.len() - 1);
            kept.extend(
                group
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != at)
                    .map(|(_, p)| *p),
            );
            *group = kept.into_boxed_slice();
        }
        Some(old)
    }

    /// Removes the entry of `key`.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<CachedLog> {
        let removed = match self.id(&key.0) {
            Some(id) => self.remove_packed(id, key.1.as_u64()),
            None => None,
        };
        let removed = match removed {
            Some(old) => Some(old),
            None => self.overflow.remove(key),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Changes the entry of `key` in place through `f`; `None` when there is none.
    pub(crate) fn update<R>(
        &mut self,
        key: &Key,
        f: impl FnOnce(&mut CachedLog) -> R,
    ) -> Option<R> {
        let id = self.id(&key.0);
        if let Some(id) = id
            && let Some(group) = self.groups.get_mut(&key.1.as_u64())
            && let Some(slot) = group.iter_mut().find(|p| p.target == id)
        {
            let mut cached = slot.unpack();
            let answer = f(&mut cached);
            match Packed::pack(id, &cached) {
                Some(packed) => *slot = packed,
                None => {
                    self.remove_packed(id, key.1.as_u64());
                    self.overflow.insert(key.clone(), cached);
                }
            }
            return Some(answer);
        }
        self.overflow.get_mut(key).map(f)
    }

    /// Every entry of one alert, by target name.
    pub(crate) fn of_fingerprint(&self, fingerprint: Fingerprint) -> Vec<(TargetName, CachedLog)> {
        let mut out: Vec<(TargetName, CachedLog)> = self
            .groups
            .get(&fingerprint.as_u64())
            .into_iter()
            .flat_map(|group| group.iter())
            .map(|p| (self.names[p.target as usize].clone(), p.unpack()))
            .collect();
        out.extend(
            self.overflow
                .iter()
                .filter(|((_, f), _)| *f == fingerprint)
                .map(|((target, _), cached)| (target.clone(), cached.clone())),
        );
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Calls `f` with every entry, in no particular order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&TargetName, Fingerprint, CachedLog)) {
        for (&fingerprint, group) in &self.groups {
            for p in group.iter() {
                f(
                    &self.names[p.target as usize],
                    Fingerprint::from_u64(fingerprint),
                    p.unpack(),
                );
            }
        }
        for ((target, fingerprint), cached) in &self.overflow {
            f(target, *fingerprint, cached.clone());
        }
    }

    /// Changes every entry through `f`, in no particular order.
    pub(crate) fn update_each(
        &mut self,
        mut f: impl FnMut(&TargetName, Fingerprint, &mut CachedLog),
    ) {
        let mut spilled: Vec<(Key, CachedLog)> = Vec::new();
        for (&fingerprint, group) in &mut self.groups {
            for slot in group.iter_mut() {
                let mut cached = slot.unpack();
                let target = &self.names[slot.target as usize];
                let fp = Fingerprint::from_u64(fingerprint);
                f(target, fp, &mut cached);
                match Packed::pack(slot.target, &cached) {
                    Some(packed) => *slot = packed,
                    None => spilled.push(((target.clone(), fp), cached)),
                }
            }
        }
        for ((target, fingerprint), cached) in &mut self.overflow {
            f(target, *fingerprint, cached);
        }
        for (key, cached) in spilled {
            // Moved whole, so `len` is unchanged.
            if let Some(id) = self.id(&key.0) {
                self.remove_packed(id, key.1.as_u64());
            }
            self.overflow.insert(key, cached);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 123_456_789).unwrap()
    }

    fn cached(seq: u64, ends: Option<DateTime<Utc>>) -> CachedLog {
        CachedLog {
            entry: LogEntry {
                status: AlertStatus::Firing,
                starts_at: at(0),
                ends_at: ends,
                sequence: seq,
                accepted_at: at(1),
            },
            body: 7 + seq,
            durable_ends_at: ends,
            seen_at: at(2),
        }
    }

    fn key(t: &str, fp: u64) -> Key {
        (TargetName::new(t).unwrap(), Fingerprint::from_u64(fp))
    }

    fn same(a: &CachedLog, b: &CachedLog) -> bool {
        a.entry == b.entry
            && a.body == b.body
            && a.durable_ends_at == b.durable_ends_at
            && a.seen_at == b.seen_at
    }

    #[test]
    fn times_decode_as_chrono_does_across_days_and_before_1970() {
        for n in [
            0,
            -1,
            1,
            86_399_999_999_999,
            86_400_000_000_000,
            -86_400_000_000_001,
            1_800_000_000_123_456_789,
            1_800_000_000_123_456_789 + 86_400_000_000_000,
            -9_000_000_000_000_000_000,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(time(n), DateTime::from_timestamp_nanos(n), "{n}");
            assert_eq!(nanos(time(n)), Some(n));
        }
    }

    #[test]
    fn a_leap_second_is_not_packed() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        let mut log = LogMap::default();
        let mut entry = cached(1, None);
        entry.entry.starts_at = leap;
        log.insert(key("a", 1), entry);
        assert_eq!(log.get(&key("a", 1)).unwrap().entry.starts_at, leap);
        assert!(log.groups.is_empty());
    }

    #[test]
    fn an_entry_is_packed_in_64_bytes() {
        assert_eq!(std::mem::size_of::<Packed>(), 64);
    }

    #[test]
    fn entries_round_trip_with_full_precision_and_group_by_fingerprint() {
        let mut log = LogMap::default();
        assert!(log.insert(key("a", 1), cached(1, Some(at(300)))).is_none());
        assert!(log.insert(key("b", 1), cached(2, None)).is_none());
        assert!(log.insert(key("a", 2), cached(3, Some(at(60)))).is_none());
        assert_eq!(log.len(), 3);
        assert_eq!(log.groups.len(), 2);
        assert!(same(
            &log.get(&key("a", 1)).unwrap(),
            &cached(1, Some(at(300)))
        ));
        assert!(same(&log.get(&key("b", 1)).unwrap(), &cached(2, None)));
        assert!(log.get(&key("b", 2)).is_none());
        assert!(log.get(&key("c", 1)).is_none());
        let old = log.insert(key("a", 1), cached(4, Some(at(400)))).unwrap();
        assert!(same(&old, &cached(1, Some(at(300)))));
        assert_eq!(log.len(), 3);
        assert!(same(
            &log.remove(&key("a", 1)).unwrap(),
            &cached(4, Some(at(400)))
        ));
        assert!(log.remove(&key("a", 1)).is_none());
        assert_eq!(log.len(), 2);
        assert!(log.contains_key(&key("b", 1)));
        assert!(log.remove(&key("b", 1)).is_some());
        assert_eq!(log.groups.len(), 1, "an emptied group is dropped");
    }

    #[test]
    fn a_time_that_cannot_be_packed_is_kept_whole() {
        let far = DateTime::from_timestamp(400 * 365 * 86_400, 1).unwrap();
        let mut log = LogMap::default();
        log.insert(key("a", 1), cached(1, Some(at(300))));
        // Moved to the overflow by an update, and back by an insert.
        assert_eq!(
            log.update(&key("a", 1), |c| {
                c.entry.ends_at = Some(far);
                c.entry.sequence
            }),
            Some(1)
        );
        assert_eq!(log.len(), 1);
        assert_eq!(log.get(&key("a", 1)).unwrap().entry.ends_at, Some(far));
        assert!(log.groups.is_empty());
        log.insert(key("a", 1), cached(2, Some(at(5))));
        assert!(log.overflow.is_empty());
        assert_eq!(log.len(), 1);
        log.insert(key("b", 9), cached(3, Some(far)));
        assert_eq!(log.len(), 2);
        let mut seen = Vec::new();
        log.for_each(|t, fp, c| seen.push((t.to_string(), fp.as_u64(), c.entry.sequence)));
        seen.sort();
        assert_eq!(seen, vec![("a".into(), 1, 2), ("b".into(), 9, 3)]);
        log.update_each(|_, _, c| c.entry.ends_at = Some(far));
        assert_eq!(log.len(), 2);
        assert!(log.groups.is_empty());
        assert_eq!(log.get(&key("a", 1)).unwrap().entry.ends_at, Some(far));
        assert!(log.remove(&key("b", 9)).is_some());
        assert_eq!(log.len(), 1);
    }
}
