//! Every file of a plaintext repository is untrusted (config, index,
//! snapshots, packs and their headers, applied records, locks): change one
//! as the input says, then open, list, restore, check --read-data --rehash,
//! prune --dry-run and migrate --dry-run. Plaintext so the fuzzed bytes
//! reach the parsers rather than stopping at authentication: the pack
//! header's type byte (kind, and bit 1: bound to its id) and the index
//! entries' `id_bound`, which a plaintext reader must never take as proof.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat_fuzz::{exercise, pristine, tampered};

fuzz_target!(|data: &[u8]| {
    exercise(tampered(pristine(false), |_| true, data), None);
});
