//! Tree blobs (one JSON node per line) as `restore` and `check` read them:
//! fed to the reader in the pieces the fuzzer chose (the first byte is the
//! piece length), then every node's paths decoded and re-encoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::repo::tree::NodeReader;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, tree)) = data.split_first() else {
        return;
    };
    let mut reader = NodeReader::default();
    let mut nodes = Vec::new();
    for chunk in tree.chunks(usize::from(piece).max(1)) {
        if reader.feed(chunk, &mut nodes).is_err() {
            return;
        }
    }
    let _ = reader.finish();
    for node in &nodes {
        let _ = (node.path_bytes(), node.target_bytes(), node.display_path());
        let _ = node.to_line();
    }
});
