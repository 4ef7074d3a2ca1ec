//! The record decoders as one entry point for the fuzz targets (feature `fuzzing`).
//!
//! A database file can be damaged, truncated or written by another build, so every decoder must
//! answer bytes it cannot read with [`alert_core::JobStoreError::Storage`], never a panic; and a
//! record it can read must encode and decode back to itself, or a restart would change it.

use alert_core::MessageRef;

use super::records::{
    StoredDeadLetter, StoredLog, decode, decode_alert, decode_job, encode, encode_alert,
    encode_job, read_dead,
};

/// Decodes `bytes` as every kind of record the tables hold. Each record that decodes is encoded
/// again, and the encoding must decode to the same record.
///
/// # Panics
/// When a decoded record does not survive its round trip, which is the bug the fuzz target is
/// looking for. Unreadable bytes are an error from the decoders, not a panic.
pub fn decode_records(bytes: &[u8]) {
    if let Ok(decoded) = decode_job(bytes) {
        // A record of the first format keeps no status; the job decoded from it is written
        // with the one the store gave it.
        let job = decoded.job;
        let encoded = encode_job(&job).expect("a decoded job encodes");
        let again = decode_job(&encoded).expect("an encoded job decodes").job;
        assert_eq!(format!("{job:?}"), format!("{again:?}"), "job round trip");
    }
    if let Ok(log) = StoredLog::decode(bytes) {
        let again = StoredLog::decode(&log.encode()).expect("an encoded log entry decodes");
        assert_eq!(format!("{log:?}"), format!("{again:?}"), "log round trip");
    }
    if let Ok(alert) = decode_alert(bytes) {
        let encoded = encode_alert(&alert).expect("a decoded alert encodes");
        let again = decode_alert(&encoded).expect("an encoded alert decodes");
        assert_eq!(alert, again, "alert round trip");
    }
    if let Ok(dead) = read_dead(bytes) {
        let encoded = encode(&StoredDeadLetter::new(&dead)).expect("a dead letter encodes");
        let again = read_dead(&encoded).expect("an encoded dead letter decodes");
        assert_eq!(
            format!("{dead:?}"),
            format!("{again:?}"),
            "dead letter round trip"
        );
    }
    if let Ok(reference) = decode::<MessageRef>(bytes) {
        let encoded = encode(&reference).expect("a message reference encodes");
        let again = decode::<MessageRef>(&encoded).expect("an encoded reference decodes");
        assert_eq!(reference, again, "message reference round trip");
    }
}
