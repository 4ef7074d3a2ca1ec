//! The redb store's record decoders: a damaged or foreign database file is an error, never a
//! panic, and every record that decodes survives its round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| queue::decode_records(data));
