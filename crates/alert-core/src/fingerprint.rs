//! The Alertmanager-compatible alert fingerprint.

use std::fmt;

use crate::alert::Labels;

/// FNV-1a 64-bit offset basis, as in prometheus/common `model/fnv.go`.
const OFFSET64: u64 = 14_695_981_039_346_656_037;
/// FNV-1a 64-bit prime.
const PRIME64: u64 = 1_099_511_628_211;
/// The byte prometheus/common writes after every label name and value (`model.SeparatorByte`).
const SEPARATOR: u8 = 0xff;

/// The 64-bit identity of a label set, equal to Alertmanager's.
///
/// It is prometheus/common's `LabelSet.Fingerprint`: FNV-1a 64 over the label names and values in
/// name order, each followed by a `0xff` byte. It prints as 16 lowercase hex digits, as
/// Alertmanager's API and webhook payloads do, so the same labels give the same fingerprint here,
/// across restarts and machines, and in Alertmanager itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// Computes the fingerprint of a label set.
    #[must_use]
    pub fn of(labels: &Labels) -> Self {
        let mut hash = OFFSET64;
        // `Labels` is a `BTreeMap`, so iteration is already in name order, as Go's sort gives.
        for (name, value) in labels {
            hash = fnv_add(hash, name.as_bytes());
            hash = fnv_add(hash, &[SEPARATOR]);
            hash = fnv_add(hash, value.as_bytes());
            hash = fnv_add(hash, &[SEPARATOR]);
        }
        Self(hash)
    }

    /// Wraps a raw 64-bit value.
    #[must_use]
    pub const fn from_u64(value: u64) -> Self {
        Self(value)
    }

    /// The raw 64-bit value.
    #[must_use]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Parses the 16-hex-digit form that [`Display`](fmt::Display) prints.
    #[must_use]
    pub fn parse_hex(text: &str) -> Option<Self> {
        if text.len() != 16 {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Self)
    }
}

fn fnv_add(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME64);
    }
    hash
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("a fingerprint is 16 hex digits"))
    }
}
