//! Service configurations read from a repository, on arbitrary bytes: a
//! snapshot's document (before a `#--live--` line) and the configuration
//! of the container there now (after it) are parsed, their settings that
//! reach into the host listed and their differences found. None of it may
//! panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let marker = b"\n#--live--\n";
    let (snapshot, live) = match data.windows(marker.len()).position(|w| w == marker) {
        Some(at) => (&data[..at], &data[at + marker.len()..]),
        None => (data, &b""[..]),
    };
    let _ = lifeboat::apply::inspect_service_document(snapshot, live);
});
