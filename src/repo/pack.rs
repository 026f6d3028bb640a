//! Packs: many encrypted blobs in one file, with an encrypted header at the
//! end that lists them (so a pack can be re-indexed on its own).
//!
//! ```text
//! blob₀ ‖ blob₁ ‖ … ‖ encrypt(header) ‖ header length (u32 LE)
//! header entry: type (1) ‖ compressed (1) ‖ stored length (4) ‖ raw length (4) ‖ id (32)
//! type: bit 0 the kind (0 data, 1 tree), bit 1 the blob is sealed bound to its id
//! ```
//!
//! A blob sealed bound to its id (format 4, [`BlobSeal`]) is encrypted with
//! associated data naming the repository, its kind, form, length and id:
//! decrypting it proves all of them, so a reader need not hash it again.

use super::crypto::{BlobId, Keys};
use serde::{Deserialize, Serialize};

/// Target size of a pack: large enough to keep file counts low, small enough
/// to bound the memory a pack in progress takes.
pub const TARGET_SIZE: usize = 16 << 20;
const ENTRY_SIZE: usize = 42;
/// No blob lifeboat writes is larger: data blobs are at most the chunker's
/// maximum (16 MiB), tree blobs about 1 MiB plus one entry (whose content
/// list grows with the file: 256 MiB is a file of some 4 million chunks).
/// Sizes read from a repository become allocations, so larger ones are damage.
pub const MAX_BLOB: u32 = 256 << 20;
/// Reserved beyond the target for the header of a pack of typical blobs.
const HEADER_ROOM: usize = 1 << 20;
/// A pack is closed at this many blobs whatever its size: what a pack in
/// progress, its upload and its index entry hold grows with its blobs
/// (about 100 bytes each), and 16 MiB of tiny files' blobs is 250,000 of
/// them. Files of 1 KiB and more fill a pack by size first.
pub const MAX_BLOBS: usize = 16 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// File content.
    Data,
    /// Snapshot tree metadata.
    Tree,
}

/// Where a blob lives inside its pack, and how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedBlob {
    #[serde(with = "hex_id")]
    pub id: BlobId,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub compressed: bool,
    /// Sealed bound to its id ([`BlobSeal`], format 4): a reader decrypts
    /// it with that associated data. Absent in index files of format 3,
    /// whose blobs are sealed without. Untrusted like every entry: a wrong
    /// value only makes the decryption fail (docs/repository-format.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub id_bound: bool,
}

/// The associated data a format-4 blob is sealed with: the repository's
/// id, the blob's kind, whether it is compressed, its length and its id.
/// Not stored: the reader builds it from the index entry, so a blob read
/// under another entry (another id, kind, form or length, or a blob of
/// another repository under the same keys) does not decrypt.
pub struct BlobSeal;

impl BlobSeal {
    const LABEL: &'static [u8] = b"lifeboat blob 4\n";

    pub fn context(
        repository_id: &str,
        kind: BlobKind,
        compressed: bool,
        raw_length: u32,
        id: &BlobId,
    ) -> Vec<u8> {
        let mut context = Vec::with_capacity(Self::LABEL.len() + repository_id.len() + 38);
        context.extend_from_slice(Self::LABEL);
        context.extend_from_slice(repository_id.as_bytes());
        context.push(kind_code(kind));
        context.push(compressed as u8);
        context.extend_from_slice(&raw_length.to_le_bytes());
        context.extend_from_slice(id);
        context
    }

    /// The context of the blob an index entry describes.
    pub fn of(repository_id: &str, blob: &PackedBlob) -> Vec<u8> {
        Self::context(
            repository_id,
            blob.kind,
            blob.compressed,
            blob.raw_length,
            &blob.id,
        )
    }
}

fn kind_code(kind: BlobKind) -> u8 {
    match kind {
        BlobKind::Data => 0,
        BlobKind::Tree => 1,
    }
}

/// Bit 1 of a header entry's type: the blob is sealed bound to its id.
const ID_BOUND: u8 = 2;

/// Ids as 64 hex digits in JSON (index entries, tree nodes), without an
/// allocation per id: every blob of an index and every content id of a tree
/// goes through here (a fifth of a 100,000-file re-run's CPU went to the
/// allocating and char-by-char `hex::encode`/`decode`, profiled).
pub mod hex_id {
    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serialize, Serializer};

    pub fn serialize<S: Serializer>(id: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 64];
        hex::encode_to_slice(id, &mut text).expect("64 digits for 32 bytes");
        s.serialize_str(std::str::from_utf8(&text).expect("hex digits are ASCII"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        d.deserialize_str(IdVisitor)
    }

    struct IdVisitor;

    impl Visitor<'_> for IdVisitor {
        type Value = [u8; 32];

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an id of 64 hex digits")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<[u8; 32], E> {
            let mut id = [0u8; 32];
            hex::decode_to_slice(text, &mut id).map_err(|_| E::custom("an id is 64 hex digits"))?;
            Ok(id)
        }
    }

    /// One id, for sequences of them (`#[serde(with = "hex_ids")]`).
    pub struct Id(pub [u8; 32]);

    impl Serialize for Id {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(&self.0, s)
        }
    }

    impl<'de> Deserialize<'de> for Id {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
            deserialize(d).map(Id)
        }
    }
}

/// A pack being filled: in memory, or (its blobs written to a file as they
/// come, [`PackBuilder::add_streamed`]) only its list of blobs.
#[derive(Default)]
pub struct PackBuilder {
    pub data: Vec<u8>,
    pub blobs: Vec<PackedBlob>,
    /// Plaintext bytes of the blobs (for statistics).
    pub raw_bytes: u64,
    /// Bytes of the blobs written elsewhere (a streamed pack's file).
    pub streamed: usize,
}

/// Where an added blob's bytes are.
enum Bytes<'b> {
    /// Copied into the pack's buffer.
    Here(&'b [u8]),
    /// This many, written by the caller to the pack's file.
    Elsewhere(usize),
}

impl PackBuilder {
    pub fn add(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        stored: &[u8],
        raw_length: usize,
        compressed: bool,
        id_bound: bool,
    ) {
        if self.data.capacity() == 0 {
            // One allocation for the whole pack and its header: growing by
            // doubling would briefly hold 1.5× a pack and keep 2× reserved.
            self.data.reserve_exact(TARGET_SIZE + HEADER_ROOM);
        }
        self.push(
            id,
            kind,
            Bytes::Here(stored),
            raw_length,
            compressed,
            id_bound,
        );
    }

    /// Lists a blob of `stored_length` bytes the caller wrote to the pack's
    /// file itself, after those before it; the pack's bytes then hold only
    /// its header once finished. A pack is added to in one way only.
    pub fn add_streamed(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        stored_length: usize,
        raw_length: usize,
        compressed: bool,
        id_bound: bool,
    ) {
        let bytes = Bytes::Elsewhere(stored_length);
        self.push(id, kind, bytes, raw_length, compressed, id_bound);
    }

    fn push(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        bytes: Bytes,
        raw_length: usize,
        compressed: bool,
        id_bound: bool,
    ) {
        let length = match bytes {
            Bytes::Here(stored) => stored.len(),
            Bytes::Elsewhere(length) => length,
        };
        self.blobs.push(PackedBlob {
            id,
            kind,
            offset: self.len() as u32,
            length: length as u32,
            raw_length: raw_length as u32,
            compressed,
            id_bound,
        });
        self.raw_bytes += raw_length as u64;
        match bytes {
            Bytes::Here(stored) => self.data.extend_from_slice(stored),
            Bytes::Elsewhere(length) => self.streamed += length,
        }
    }

    /// The bytes of the blobs added so far.
    pub fn len(&self) -> usize {
        self.streamed + self.data.len()
    }

    /// Whether a blob of `stored_length` bytes still fits (an empty pack takes any blob).
    pub fn fits(&self, stored_length: usize) -> bool {
        self.blobs.is_empty()
            || (self.len() + stored_length <= TARGET_SIZE && self.blobs.len() < MAX_BLOBS)
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// The finished pack file: blobs, encrypted header, header length (of a
    /// streamed pack, the bytes that follow its blobs).
    pub fn finish(mut self, keys: &Keys) -> (Vec<u8>, Vec<PackedBlob>) {
        let mut header = Vec::with_capacity(self.blobs.len() * ENTRY_SIZE);
        for blob in &self.blobs {
            header.push(kind_code(blob.kind) | if blob.id_bound { ID_BOUND } else { 0 });
            header.push(blob.compressed as u8);
            header.extend_from_slice(&blob.length.to_le_bytes());
            header.extend_from_slice(&blob.raw_length.to_le_bytes());
            header.extend_from_slice(&blob.id);
        }
        let sealed = keys.encrypt(&header);
        self.data.extend_from_slice(&sealed);
        self.data
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        (self.data, self.blobs)
    }
}

/// Reads a pack's header back: the list of blobs it claims to hold.
pub fn read_header(keys: &Keys, pack: &[u8]) -> Result<Vec<PackedBlob>, String> {
    let length = header_length(pack)?;
    if length + 4 > pack.len() {
        return Err("header length points before the start (truncated?)".into());
    }
    decode_header(
        keys,
        &pack[pack.len() - 4 - length..pack.len() - 4],
        pack.len() as u64,
    )
}

/// The length of the sealed header, from the last 4 bytes of a pack (or of
/// its tail: the header can be read without the blobs before it).
pub fn header_length(tail: &[u8]) -> Result<usize, String> {
    if tail.len() < 4 {
        return Err("shorter than its header length field".into());
    }
    Ok(u32::from_le_bytes(tail[tail.len() - 4..].try_into().expect("4 bytes")) as usize)
}

/// Headers of up to this many blobs are found by [`find_header`]: each
/// candidate length costs a decryption, so the search is bounded (larger
/// packs need their index entries to be salvaged).
const MAX_SEARCHED_ENTRIES: usize = 1024;

/// Searches a pack whose trailer (the header length) is lost, cut short or
/// damaged for a sealed header that still authenticates at its end: the
/// blobs it lists, placed as they were. `None` when none does.
pub fn find_header(keys: &Keys, pack: &[u8]) -> Option<Vec<PackedBlob>> {
    let overhead = keys.encryption_overhead();
    // Trailer bytes still there: none (cut off), all four (damaged), or some.
    [0usize, 4, 1, 2, 3].into_iter().find_map(|left| {
        let end = pack.len().checked_sub(left)?;
        (1..=MAX_SEARCHED_ENTRIES)
            .map(|entries| overhead + entries * ENTRY_SIZE)
            .take_while(|sealed| *sealed <= end)
            .find_map(|sealed| decode_header(keys, &pack[end - sealed..end], end as u64 + 4).ok())
    })
}

/// Authenticates and parses a sealed header of a pack of `pack_size` bytes.
pub fn decode_header(
    keys: &Keys,
    sealed: &[u8],
    pack_size: u64,
) -> Result<Vec<PackedBlob>, String> {
    let header = keys
        .decrypt(sealed)
        .map_err(|_| "header does not authenticate".to_string())?;
    if header.len() % ENTRY_SIZE != 0 {
        return Err("header has a partial entry".into());
    }
    let mut offset = 0u32;
    let mut blobs = Vec::new();
    for entry in header.chunks(ENTRY_SIZE) {
        let kind = match entry[0] & !ID_BOUND {
            0 => BlobKind::Data,
            1 => BlobKind::Tree,
            _ => return Err(format!("unknown blob type {}", entry[0])),
        };
        let compressed = match entry[1] {
            0 => false,
            1 => true,
            other => return Err(format!("unknown compression flag {other}")),
        };
        let length = u32::from_le_bytes(entry[2..6].try_into().expect("4 bytes"));
        blobs.push(PackedBlob {
            id: entry[10..42].try_into().expect("32 bytes"),
            kind,
            offset,
            length,
            raw_length: u32::from_le_bytes(entry[6..10].try_into().expect("4 bytes")),
            compressed,
            id_bound: entry[0] & ID_BOUND != 0,
        });
        offset = offset
            .checked_add(length)
            .ok_or_else(|| "blob lengths add up to more than a pack can hold".to_string())?;
    }
    if offset as u64 + sealed.len() as u64 + 4 != pack_size {
        return Err("blobs and header do not add up to the pack size".into());
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pack of one data blob bound to its id and one tree blob that is not.
    fn pack(keys: &Keys) -> Vec<u8> {
        let mut builder = PackBuilder::default();
        builder.add([1; 32], BlobKind::Data, b"data", 4, false, true);
        builder.add([2; 32], BlobKind::Tree, b"tree", 4, true, false);
        builder.finish(keys).0
    }

    #[test]
    fn the_header_says_per_blob_whether_it_is_bound_to_its_id() {
        let keys = Keys::random();
        let blobs = read_header(&keys, &pack(&keys)).unwrap();
        let flags: Vec<_> = blobs
            .iter()
            .map(|b| (b.kind, b.compressed, b.id_bound))
            .collect();
        assert_eq!(
            flags,
            [(BlobKind::Data, false, true), (BlobKind::Tree, true, false)]
        );
    }

    #[test]
    fn unknown_type_bits_and_compression_flags_are_damage() {
        let keys = Keys::plaintext();
        let good = pack(&keys);
        let header_start = good.len() - 4 - 2 * ENTRY_SIZE;
        for (at, value, expected) in [
            (0, 4, "unknown blob type 4"),
            (0, 0x80, "unknown blob type 128"),
            (1, 2, "unknown compression flag 2"),
        ] {
            let mut bad = good.clone();
            bad[header_start + at] = value;
            let error = read_header(&keys, &bad).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
