//! The file tree of a snapshot: one [`Node`] per entry, in pre-order with
//! siblings sorted by name bytes (the order Docker's archive and a sorted
//! directory walk both produce), serialised as JSON lines and stored as
//! content-defined chunks ("tree" blobs), so unchanged metadata deduplicates
//! like file content does.
//!
//! Only what both reading paths (Docker archive, direct directory walk) can
//! see is recorded, so both give byte-identical trees: mtimes to the second
//! (Docker truncates them), numeric owners, permission and special bits,
//! extended attributes (POSIX ACLs included). Where one path sees less than
//! the other (Docker's archive carries only `security.capability` among the
//! attributes, and no sockets), the backup says so in its notes.

use super::crypto::BlobId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    /// A further name of a file seen earlier in the tree (`target` is its path).
    Hardlink,
    Fifo,
    CharDevice,
    BlockDevice,
    /// A unix socket (direct mode only: Docker's archive skips them).
    Socket,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Path relative to the root, `/`-separated; empty for the root itself.
    /// Names that are not UTF-8 are kept exactly in `path_hex` instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub kind: NodeKind,
    /// Permission bits plus setuid/setgid/sticky (the low 12 bits of st_mode).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Content blobs in order (files only).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex_ids")]
    pub content: Vec<BlobId>,
    /// Symlink target, or the path a hard link points to; raw bytes as hex
    /// when not UTF-8 (`target_hex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_hex: Option<String>,
    /// Device numbers for device nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<(u32, u32)>,
    /// Extended attributes, sorted by name (so trees stay deterministic and
    /// deduplicate). POSIX ACLs are the attributes `system.posix_acl_access`
    /// and `system.posix_acl_default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

/// One extended attribute: its name and its value as hex.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Xattr {
    pub name: String,
    pub value: String,
}

impl Xattr {
    pub fn new(name: &str, value: &[u8]) -> Xattr {
        Xattr {
            name: name.to_string(),
            value: hex::encode(value),
        }
    }

    /// The raw value; `None` when the stored hex is not hex (a damaged tree).
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        hex::decode(&self.value).ok()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

mod hex_ids {
    use super::super::pack::hex_id::Id;
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(ids: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(ids.len()))?;
        for id in ids {
            seq.serialize_element(&Id(*id))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let ids = Vec::<Id>::deserialize(d)?;
        Ok(ids.into_iter().map(|Id(id)| id).collect())
    }
}

/// Splits raw bytes into (utf-8 text, hex fallback).
pub fn encode_bytes(raw: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(raw) {
        Ok(text) => (text.to_string(), None),
        Err(_) => (String::new(), Some(hex::encode(raw))),
    }
}

fn decode_bytes(text: &str, hex_form: &Option<String>) -> Vec<u8> {
    match hex_form {
        Some(h) => hex::decode(h).unwrap_or_default(),
        None => text.as_bytes().to_vec(),
    }
}

impl Node {
    /// An entry with no name, content, target or attributes yet.
    pub fn new(kind: NodeKind, mode: u32, uid: u64, gid: u64, mtime: i64) -> Node {
        Node {
            path: String::new(),
            path_hex: None,
            kind,
            mode,
            uid,
            gid,
            mtime,
            size: 0,
            content: Vec::new(),
            target: None,
            target_hex: None,
            device: None,
            xattrs: Vec::new(),
        }
    }

    pub fn path_bytes(&self) -> Vec<u8> {
        decode_bytes(&self.path, &self.path_hex)
    }

    pub fn target_bytes(&self) -> Option<Vec<u8>> {
        match (&self.target, &self.target_hex) {
            (_, Some(h)) => hex::decode(h).ok(),
            (Some(t), None) => Some(t.as_bytes().to_vec()),
            (None, None) => None,
        }
    }

    pub fn set_path(&mut self, raw: &[u8]) {
        let (path, path_hex) = encode_bytes(raw);
        self.path = path;
        self.path_hex = path_hex;
    }

    pub fn set_target(&mut self, raw: &[u8]) {
        let (target, target_hex) = encode_bytes(raw);
        self.target = if target_hex.is_some() {
            None
        } else {
            Some(target)
        };
        self.target_hex = target_hex;
    }

    /// Shown in messages: lossy but readable.
    pub fn display_path(&self) -> String {
        let raw = self.path_bytes();
        if raw.is_empty() {
            "/".to_string()
        } else {
            String::from_utf8_lossy(&raw).into_owned()
        }
    }

    /// One JSON line.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("nodes serialise");
        line.push(b'\n');
        line
    }
}

/// Parses nodes out of tree bytes that arrive in pieces (chunk boundaries
/// fall anywhere in a line).
#[derive(Default)]
pub struct NodeReader {
    pending: Vec<u8>,
}

impl NodeReader {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Node>) -> Result<(), String> {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let line = &self.pending[start..start + end];
            out.push(serde_json::from_slice(line).map_err(|e| format!("bad tree entry: {e}"))?);
            start += end + 1;
        }
        self.pending.drain(..start);
        Ok(())
    }

    pub fn finish(&self) -> Result<(), String> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err("tree ends in the middle of an entry".into())
        }
    }
}
