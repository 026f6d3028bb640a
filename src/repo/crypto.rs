//! Keys and the primitives applied to every stored byte.
//!
//! * A random master key pair: 32 bytes for AES-256-GCM, 32 bytes for the
//!   HMAC-SHA256 that names blobs (so ids reveal nothing about content).
//! * The pair is stored in `keys/` encrypted under a key derived from the
//!   passphrase with argon2id (parameters and salt stored beside it).
//! * Every encrypted message is `nonce (12) ‖ ciphertext ‖ tag (16)`.
//!
//! A plaintext repository (explicit opt-in) uses the same layout with no
//! encryption and a fixed, public id key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key};
use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Bytes an encrypted message adds to its plaintext.
pub const OVERHEAD: usize = 12 + 16;

/// A blob's name: keyed SHA-256 of its plaintext.
pub type BlobId = [u8; 32];

#[derive(Clone)]
pub struct Keys {
    cipher: Option<Aes256Gcm>,
    id_key: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Decryption failed: wrong key or tampered data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inauthentic;

impl Keys {
    pub fn random() -> Keys {
        let material: [u8; 64] = rand::random();
        Keys::from_material(&material)
    }

    pub fn plaintext() -> Keys {
        Keys {
            cipher: None,
            id_key: *b"lifeboat plaintext repository id",
        }
    }

    fn from_material(material: &[u8; 64]) -> Keys {
        let key = Key::<Aes256Gcm>::try_from(&material[..32]).expect("32 bytes");
        let mut id_key = [0; 32];
        id_key.copy_from_slice(&material[32..]);
        Keys {
            cipher: Some(Aes256Gcm::new(&key)),
            id_key,
        }
    }

    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.id_key).expect("any key size");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        match &self.cipher {
            None => plaintext.to_vec(),
            Some(cipher) => {
                let nonce_bytes: [u8; 12] = rand::random();
                let nonce = aes_gcm::Nonce::try_from(&nonce_bytes[..]).expect("12 bytes");
                let sealed = cipher
                    .encrypt(&nonce, plaintext)
                    .expect("message size in bounds");
                let mut out = Vec::with_capacity(12 + sealed.len());
                out.extend_from_slice(&nonce_bytes);
                out.extend_from_slice(&sealed);
                out
            }
        }
    }

    pub fn decrypt(&self, message: &[u8]) -> Result<Vec<u8>, Inauthentic> {
        match &self.cipher {
            None => Ok(message.to_vec()),
            Some(cipher) => {
                if message.len() < OVERHEAD {
                    return Err(Inauthentic);
                }
                let nonce = aes_gcm::Nonce::try_from(&message[..12]).map_err(|_| Inauthentic)?;
                cipher
                    .decrypt(&nonce, &message[12..])
                    .map_err(|_| Inauthentic)
            }
        }
    }

    pub fn encryption_overhead(&self) -> usize {
        if self.is_encrypted() { OVERHEAD } else { 0 }
    }
}

/// The stored form of the master keys: what `keys/<id>` holds (JSON).
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyFile {
    pub kdf: String,
    /// argon2 memory in KiB, iterations, lanes.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: String,
    /// The 64 key bytes, encrypted under the derived key (hex).
    pub data: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub hostname: String,
}

/// argon2id cost: about a quarter of a second here, 32 MiB so that opening a
/// repository stays well inside the memory budget of a backup.
const MEMORY_KIB: u32 = 32 * 1024;
const ITERATIONS: u32 = 3;
const PARALLELISM: u32 = 1;

fn derive(passphrase: &str, salt: &[u8], file: &KeyFile) -> Keys {
    let params = argon2::Params::new(file.memory_kib, file.iterations, file.parallelism, Some(64))
        .expect("valid argon2 parameters");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut material = [0u8; 64];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut material)
        .expect("argon2 parameters checked");
    Keys::from_material(&material)
}

impl KeyFile {
    /// Wraps fresh master keys under `passphrase`; returns the file and the keys.
    pub fn create(passphrase: &str) -> (KeyFile, Keys) {
        let material: [u8; 64] = rand::random();
        let salt: [u8; 16] = rand::random();
        let mut file = KeyFile {
            kdf: "argon2id".to_string(),
            memory_kib: MEMORY_KIB,
            iterations: ITERATIONS,
            parallelism: PARALLELISM,
            salt: hex::encode(salt),
            data: String::new(),
            created: chrono::Utc::now(),
            hostname: crate::repo::lock::hostname(),
        };
        let wrapping = derive(passphrase, &salt, &file);
        file.data = hex::encode(wrapping.encrypt(&material));
        (file, Keys::from_material(&material))
    }

    /// The master keys, or `None` when the passphrase does not open this key.
    pub fn open(&self, passphrase: &str) -> Option<Keys> {
        let salt = hex::decode(&self.salt).ok()?;
        let data = hex::decode(&self.data).ok()?;
        let wrapping = derive(passphrase, &salt, self);
        let material = wrapping.decrypt(&data).ok()?;
        let material: [u8; 64] = material.try_into().ok()?;
        Some(Keys::from_material(&material))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let keys = Keys::random();
        let sealed = keys.encrypt(b"secret content");
        assert_eq!(sealed.len(), 14 + OVERHEAD);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(keys.decrypt(&sealed).unwrap(), b"secret content");
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(keys.decrypt(&flipped), Err(Inauthentic));
        assert_eq!(Keys::random().decrypt(&sealed), Err(Inauthentic));
    }

    #[test]
    fn ids_are_keyed() {
        let a = Keys::random();
        let b = Keys::random();
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
    }

    #[test]
    fn key_file_opens_only_with_its_passphrase() {
        let (file, keys) = KeyFile::create("right");
        let opened = file.open("right").expect("opens");
        assert_eq!(opened.blob_id(b"x"), keys.blob_id(b"x"));
        assert!(file.open("wrong").is_none());
    }
}
