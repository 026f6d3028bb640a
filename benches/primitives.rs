//! Throughput of the primitives the repository could use, on this CPU:
//! `cargo bench --bench primitives`. docs/benchmarks.md records the figures
//! that chose ours (content ids, encryption, compression, chunking).

use aes_gcm::aead::{Aead, KeyInit};
use hmac::Mac;
use sha2::Digest;
use std::hint::black_box;
use std::time::Instant;

const MIB: usize = 1 << 20;

/// Half text-like, half random: roughly the reference volume's mix.
fn sample(size: usize) -> Vec<u8> {
    let words: Vec<&[u8]> =
        b"alpha beta gamma delta request response error id total status ok retry"
            .split(|b| *b == b' ')
            .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(size);
    while out.len() < size / 2 {
        out.extend_from_slice(words[(next() % words.len() as u64) as usize]);
        out.extend_from_slice(format!(" {} ", next() % 100_000).as_bytes());
    }
    while out.len() < size {
        out.extend_from_slice(&next().to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Runs `work` over 1 MiB pieces of `data` until about 0.5 s passed; MiB/s.
fn throughput(data: &[u8], work: impl FnMut(&[u8]) -> usize) -> f64 {
    throughput_in(data, MIB, work)
}

/// [`throughput`] over pieces of `size` bytes (4 KiB: tree blobs and
/// small files, where a hash's per-call cost shows).
fn throughput_in(data: &[u8], size: usize, mut work: impl FnMut(&[u8]) -> usize) -> f64 {
    let started = Instant::now();
    let mut bytes = 0usize;
    while started.elapsed().as_secs_f64() < 0.5 {
        for piece in data.chunks(size) {
            black_box(work(piece));
            bytes += piece.len();
        }
    }
    bytes as f64 / MIB as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo test --all-targets` runs bench targets too; measure only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let data = sample(64 * MIB);
    let key = [7u8; 32];
    let nonce = [1u8; 12];
    let row = |name: &str, mibs: f64, note: String| {
        println!("{name:<34} {mibs:>8.0} MiB/s  {note}");
    };

    row(
        "sha256 (sha2, SHA-NI)",
        throughput(&data, |p| sha2::Sha256::digest(p)[0] as usize),
        String::new(),
    );
    let hmac_id = |p: &[u8]| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(p);
        mac.finalize().into_bytes()[0] as usize
    };
    let blake3_id = |p: &[u8]| blake3::keyed_hash(&key, p).as_bytes()[0] as usize;
    row(
        "hmac-sha256 (content ids)",
        throughput(&data, hmac_id),
        String::new(),
    );
    row(
        "blake3 keyed (1 thread)",
        throughput(&data, blake3_id),
        String::new(),
    );
    // Format 4's choice of id function (docs/repository-format.md): the
    // same two on 4 KiB pieces. Build with `RUSTFLAGS='--cfg
    // sha2_backend="soft"'` for a CPU without SHA extensions.
    row(
        "hmac-sha256 (4 KiB pieces)",
        throughput_in(&data, 4096, hmac_id),
        String::new(),
    );
    row(
        "blake3 keyed (4 KiB pieces)",
        throughput_in(&data, 4096, blake3_id),
        String::new(),
    );

    let aes =
        aes_gcm::Aes256Gcm::new(&aes_gcm::Key::<aes_gcm::Aes256Gcm>::try_from(&key[..]).unwrap());
    let aes_nonce = aes_gcm::Nonce::try_from(&nonce[..]).unwrap();
    row(
        "aes-256-gcm encrypt (VAES)",
        throughput(&data, |p| aes.encrypt(&aes_nonce, p).unwrap().len()),
        String::new(),
    );
    let chacha = chacha20poly1305::ChaCha20Poly1305::new(
        &chacha20poly1305::Key::try_from(&key[..]).unwrap(),
    );
    let chacha_nonce = chacha20poly1305::Nonce::try_from(&nonce[..]).unwrap();
    row(
        "chacha20-poly1305 encrypt",
        throughput(&data, |p| chacha.encrypt(&chacha_nonce, p).unwrap().len()),
        String::new(),
    );

    for level in [1, 2, 3, 6] {
        let mut compressor = zstd::bulk::Compressor::new(level).unwrap();
        let mut stored = 0usize;
        let mut raw = 0usize;
        let speed = throughput(&data, |p| {
            let n = compressor.compress(p).unwrap().len();
            stored += n;
            raw += p.len();
            n
        });
        row(
            &format!("zstd level {level}"),
            speed,
            format!("ratio {:.3}", stored as f64 / raw as f64),
        );
    }

    let started = Instant::now();
    let mut bytes = 0usize;
    while started.elapsed().as_secs_f64() < 0.5 {
        for chunk in fastcdc::v2020::FastCDC::new(&data, 512 * 1024, MIB, 8 * MIB) {
            bytes += black_box(chunk.length);
        }
    }
    let speed = bytes as f64 / MIB as f64 / started.elapsed().as_secs_f64();
    row("fastcdc v2020 (512K/1M/8M)", speed, String::new());
}
