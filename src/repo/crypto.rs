//! Keys and the primitives applied to every stored byte.
//!
//! * A random master key pair: 32 bytes for AES-256-GCM, 32 bytes for the
//!   keyed hash that names blobs (so ids reveal nothing about content):
//!   keyed BLAKE3 since format 4, HMAC-SHA256 in repositories created
//!   before ([`IdFunction`]; the repository's config says which).
//! * The pair is stored in `keys/` encrypted under a key derived from the
//!   passphrase with argon2id (parameters and salt stored beside it).
//! * Every encrypted message is `nonce (12) ‖ ciphertext ‖ tag (16)`.
//!
//! A plaintext repository (explicit opt-in) uses the same layout with no
//! encryption and a fixed, public id key.
//!
//! Key files come from the repository, so they are untrusted input: every
//! parameter is bounded ([`KdfBounds`]) before anything is derived, so a
//! hostile file fails with a message instead of a panic, an allocation the
//! file asked for, or an hour of argon2.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key};
use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Bytes an encrypted message adds to its plaintext.
pub const OVERHEAD: usize = 12 + 16;

/// A blob's name: the keyed hash ([`IdFunction`]) of its plaintext.
pub type BlobId = [u8; 32];

/// The keyed hash that names a repository's blobs. Chosen once, when the
/// repository is created, and kept for good: another function would give
/// every blob another id, so nothing stored before would deduplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdFunction {
    /// Repositories created by format 1 to 3 (kept when they are upgraded).
    HmacSha256,
    /// Format 4: 1.4 to 3.7 times HMAC-SHA256's speed per core with SHA
    /// extensions, 5 to 19 times without, measured (docs/repository-format.md,
    /// "The id function, chosen by measurement").
    Blake3Keyed,
}

#[derive(Clone)]
pub struct Keys {
    cipher: Option<Aes256Gcm>,
    id_key: [u8; 32],
    id_function: IdFunction,
    /// Authenticates the `config` (HMAC-SHA256); derived from the master
    /// key material, so only someone holding the keys can vouch for a config.
    config_key: Option<[u8; 32]>,
    /// The master key material itself, to wrap it under another passphrase
    /// (`key add`) or write it out (`key export`); `None` in plaintext.
    material: Option<[u8; 64]>,
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
            id_function: IdFunction::Blake3Keyed,
            config_key: None,
            material: None,
        }
    }

    pub(crate) fn from_material(material: &[u8; 64]) -> Keys {
        let (cipher_key, id_half) = material.split_at(32);
        let key = Key::<Aes256Gcm>::try_from(cipher_key).expect("32 bytes");
        let mut id_key = [0; 32];
        id_key.copy_from_slice(id_half);
        Keys {
            cipher: Some(Aes256Gcm::new(&key)),
            id_key,
            id_function: IdFunction::Blake3Keyed,
            config_key: Some(hmac_sha256(material, CONFIG_KEY_LABEL)),
            material: Some(*material),
        }
    }

    /// The master key material; `None` for a plaintext repository.
    pub(crate) fn material(&self) -> Option<&[u8; 64]> {
        self.material.as_ref()
    }

    /// The MAC of a repository config's canonical bytes; `None` for a
    /// plaintext repository, which has no secret to vouch with.
    pub fn config_mac(&self, canonical: &[u8]) -> Option<[u8; 32]> {
        self.config_key.map(|key| hmac_sha256(&key, canonical))
    }

    /// Whether `mac` vouches for `canonical` (compared in constant time).
    pub fn verify_config_mac(&self, canonical: &[u8], mac: &[u8]) -> bool {
        self.config_key.is_some_and(|key| {
            let mut check = hmac::Hmac::<Sha256>::new_from_slice(&key).expect("any key size");
            check.update(canonical);
            check.verify_slice(mac).is_ok()
        })
    }

    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// These keys naming blobs with `function` (the repository's config
    /// says which; the id key is the same 32 bytes of master material).
    pub(crate) fn with_id_function(mut self, function: IdFunction) -> Keys {
        self.id_function = function;
        self
    }

    pub fn id_function(&self) -> IdFunction {
        self.id_function
    }

    /// Whether `other` names blobs as these keys do (the same id key and
    /// the same function), so ids of one repository are ids in the other.
    pub(crate) fn same_blob_ids(&self, other: &Keys) -> bool {
        self.id_key == other.id_key && self.id_function == other.id_function
    }

    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        #[cfg(test)]
        tests::ID_HASHES.with(|count| count.set(count.get() + 1));
        match self.id_function {
            IdFunction::HmacSha256 => hmac_sha256(&self.id_key, data),
            IdFunction::Blake3Keyed => blake3::keyed_hash(&self.id_key, data).into(),
        }
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        self.seal(plaintext, b"")
    }

    pub fn decrypt(&self, message: &[u8]) -> Result<Vec<u8>, Inauthentic> {
        self.unseal(message, b"")
    }

    /// Encrypts `plaintext` and authenticates it together with `context`
    /// (not stored: the reader must present the same). An empty context is
    /// plain AES-GCM, so [`Keys::encrypt`] is this with none. Plaintext
    /// keys store `plaintext` as it is and vouch for nothing.
    pub(crate) fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + self.encryption_overhead());
        self.seal_into(plaintext, context, &mut out);
        out
    }

    /// [`Keys::seal`] into `out` (emptied first): the plaintext is copied
    /// once and encrypted where it lies, and `out` may be a reused buffer.
    pub(crate) fn seal_into(&self, plaintext: &[u8], context: &[u8], out: &mut Vec<u8>) {
        out.clear();
        match &self.cipher {
            None => out.extend_from_slice(plaintext),
            Some(cipher) => {
                let nonce_bytes: [u8; 12] = rand::random();
                let nonce = aes_gcm::Nonce::try_from(&nonce_bytes[..]).expect("12 bytes");
                out.reserve(plaintext.len() + OVERHEAD);
                out.extend_from_slice(&nonce_bytes);
                out.extend_from_slice(plaintext);
                let tag = cipher
                    .encrypt_inout_detached(&nonce, context, (&mut out[12..]).into())
                    .expect("message size in bounds");
                out.extend_from_slice(&tag);
            }
        }
    }

    /// Decrypts what [`Keys::seal`] sealed with the same `context`.
    pub(crate) fn unseal(&self, message: &[u8], context: &[u8]) -> Result<Vec<u8>, Inauthentic> {
        let mut out = Vec::new();
        self.unseal_into(message, context, &mut out)?;
        Ok(out)
    }

    /// [`Keys::unseal`] into `out` (emptied first; may be a reused
    /// buffer): the ciphertext is copied once and decrypted where it lies.
    /// On failure `out` holds nothing the caller may use.
    pub(crate) fn unseal_into(
        &self,
        message: &[u8],
        context: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Inauthentic> {
        out.clear();
        match &self.cipher {
            None => out.extend_from_slice(message),
            Some(cipher) => {
                if message.len() < OVERHEAD {
                    return Err(Inauthentic);
                }
                let (nonce, sealed) = message.split_at(12);
                let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
                let nonce = aes_gcm::Nonce::try_from(nonce).map_err(|_| Inauthentic)?;
                let tag = aes_gcm::Tag::try_from(tag).map_err(|_| Inauthentic)?;
                out.extend_from_slice(ciphertext);
                if cipher
                    .decrypt_inout_detached(&nonce, context, out.as_mut_slice().into(), &tag)
                    .is_err()
                {
                    out.clear();
                    return Err(Inauthentic);
                }
            }
        }
        Ok(())
    }

    pub fn encryption_overhead(&self) -> usize {
        if self.is_encrypted() { OVERHEAD } else { 0 }
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("any key size");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Domain separation: the config key is not the id key nor the cipher key.
const CONFIG_KEY_LABEL: &[u8] = b"lifeboat config authentication key";

/// The stored form of the master keys: what `keys/<id>` holds (JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Absent in format-1 key files; 2 when the parameters below are bound
    /// to the wrapped keys as associated data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
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

/// argon2id cost: 32 MiB so that opening a repository stays well inside
/// the memory budget of a backup, three passes. Two lanes, filled on two
/// threads at once (RFC 9106 recommends several): the same memory and
/// passes cost a guesser as much, and every command that opens the
/// repository waits half as long (the derivation was half of an
/// unchanged re-run's 0.19 s). Key files keep the parameters they were
/// written with, so older ones open as before, on one lane.
const MEMORY_KIB: u32 = 32 * 1024;
const ITERATIONS: u32 = 3;
const PARALLELISM: u32 = 2;
const SALT_BYTES: usize = 16;
/// The key file version this lifeboat writes.
const KEY_FILE_VERSION: u32 = 2;

/// What a key file may ask of the key derivation. The memory bound keeps
/// opening a repository within a backup's memory budget; the work bound
/// (memory × passes) keeps it under about ten seconds here; argon2 needs
/// at least 8 KiB per lane, which the memory floor covers.
pub struct KdfBounds;

impl KdfBounds {
    pub const MEMORY_KIB: std::ops::RangeInclusive<u32> = 8 * 1024..=1024 * 1024;
    pub const ITERATIONS: std::ops::RangeInclusive<u32> = 1..=64;
    pub const PARALLELISM: std::ops::RangeInclusive<u32> = 1..=16;
    /// `memory_kib × iterations` at most this: 4 GiB of memory passes.
    pub const WORK_KIB: u64 = 4 * 1024 * 1024;
    pub const SALT_BYTES: std::ops::RangeInclusive<usize> = 16..=64;
}

/// A key file's derivation parameters, checked against [`KdfBounds`].
struct Checked {
    params: argon2::Params,
    salt: Vec<u8>,
}

fn in_bounds<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    bounds: std::ops::RangeInclusive<T>,
) -> Result<(), String> {
    if bounds.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{name} {value} is outside {}..={}",
            bounds.start(),
            bounds.end()
        ))
    }
}

fn derive(passphrase: &str, checked: &Checked) -> Result<Keys, String> {
    #[cfg(test)]
    tests::KEY_DERIVATIONS.with(|count| count.set(count.get() + 1));
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        checked.params.clone(),
    );
    let mut material = [0u8; 64];
    argon
        .hash_password_into(passphrase.as_bytes(), &checked.salt, &mut material)
        .map_err(|e| format!("key derivation failed: {e}"))?;
    Ok(Keys::from_material(&material))
}

impl KeyFile {
    /// Wraps fresh master keys under `passphrase`; returns the file and the keys.
    pub fn create(passphrase: &str) -> (KeyFile, Keys) {
        let material: [u8; 64] = rand::random();
        (
            KeyFile::wrap(&material, passphrase),
            Keys::from_material(&material),
        )
    }

    /// A key file holding `material` (existing master keys) under `passphrase`.
    pub fn wrap(material: &[u8; 64], passphrase: &str) -> KeyFile {
        let salt: [u8; SALT_BYTES] = rand::random();
        let mut file = KeyFile {
            version: Some(KEY_FILE_VERSION),
            kdf: "argon2id".to_string(),
            memory_kib: MEMORY_KIB,
            iterations: ITERATIONS,
            parallelism: PARALLELISM,
            salt: hex::encode(salt),
            data: String::new(),
            created: chrono::Utc::now(),
            hostname: crate::host::hostname(),
        };
        let checked = file.check().expect("our own parameters are in bounds");
        let wrapping = derive(passphrase, &checked).expect("our own parameters derive");
        file.data = hex::encode(wrapping.seal(material, &file.context()));
        file
    }

    /// Parses a key file and checks every parameter; the error says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<KeyFile, String> {
        let file: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| format!("not a key file: {e}"))?;
        file.check()?;
        file.sealed()?;
        Ok(file)
    }

    /// The wrapped keys.
    fn sealed(&self) -> Result<Vec<u8>, String> {
        let sealed = hex::decode(&self.data).map_err(|e| format!("data is not hex: {e}"))?;
        if sealed.len() != 64 + OVERHEAD {
            return Err(format!(
                "data holds {} bytes, a wrapped key holds {}",
                sealed.len(),
                64 + OVERHEAD
            ));
        }
        Ok(sealed)
    }

    fn check(&self) -> Result<Checked, String> {
        match self.version {
            None | Some(KEY_FILE_VERSION) => {}
            Some(other) => {
                return Err(format!(
                    "key file version {other}: this lifeboat reads versions 1 and                      {KEY_FILE_VERSION}; upgrade lifeboat"
                ));
            }
        }
        if self.kdf != "argon2id" {
            return Err(format!(
                "kdf {:?} is not supported (only \"argon2id\")",
                self.kdf
            ));
        }
        in_bounds("memory_kib", self.memory_kib, KdfBounds::MEMORY_KIB)?;
        in_bounds("iterations", self.iterations, KdfBounds::ITERATIONS)?;
        in_bounds("parallelism", self.parallelism, KdfBounds::PARALLELISM)?;
        let work = u64::from(self.memory_kib) * u64::from(self.iterations);
        if work > KdfBounds::WORK_KIB {
            return Err(format!(
                "memory_kib × iterations = {work} is more than {} (about ten seconds of argon2)",
                KdfBounds::WORK_KIB
            ));
        }
        let salt = hex::decode(&self.salt).map_err(|e| format!("salt is not hex: {e}"))?;
        in_bounds("salt length (bytes)", salt.len(), KdfBounds::SALT_BYTES)?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(64))
                .map_err(|e| format!("argon2 refuses the parameters: {e}"))?;
        Ok(Checked { params, salt })
    }

    /// What the wrapped keys are authenticated with besides the derived key:
    /// every parameter, so none can be changed without the file failing.
    /// Format-1 key files have none.
    fn context(&self) -> Vec<u8> {
        match self.version {
            None => Vec::new(),
            Some(version) => format!(
                "lifeboat key file {version}\n{}\n{}\n{}\n{}\n{}\n",
                self.kdf, self.memory_kib, self.iterations, self.parallelism, self.salt
            )
            .into_bytes(),
        }
    }

    /// The master keys; `Ok(None)` when the passphrase does not open this
    /// key; `Err` when the file's parameters are unusable (say why).
    pub fn open(&self, passphrase: &str) -> Result<Option<Keys>, String> {
        let checked = self.check()?;
        let sealed = self.sealed()?;
        let wrapping = derive(passphrase, &checked)?;
        let Ok(material) = wrapping.unseal(&sealed, &self.context()) else {
            return Ok(None);
        };
        let material: [u8; 64] = material
            .try_into()
            .map_err(|_| "the wrapped key has the wrong length".to_string())?;
        Ok(Some(Keys::from_material(&material)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// Blob ids this thread computed: tests prove a read hashed nothing.
        pub(crate) static ID_HASHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    thread_local! {
        /// Keys this thread derived from a passphrase (argon2 runs).
        pub(crate) static KEY_DERIVATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// How many times `work` ran argon2 on this thread.
    pub(crate) fn key_derivations_of<T>(work: impl FnOnce() -> T) -> (T, u64) {
        let before = KEY_DERIVATIONS.with(|count| count.get());
        let result = work();
        (result, KEY_DERIVATIONS.with(|count| count.get()) - before)
    }

    /// How many blob ids `work` computed on this thread.
    pub(crate) fn id_hashes_of<T>(work: impl FnOnce() -> T) -> (T, u64) {
        let before = ID_HASHES.with(|count| count.get());
        let result = work();
        (result, ID_HASHES.with(|count| count.get()) - before)
    }

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
    fn the_id_function_is_part_of_what_names_blobs() {
        let blake3 = Keys::random();
        assert_eq!(blake3.id_function(), IdFunction::Blake3Keyed);
        let hmac = blake3.clone().with_id_function(IdFunction::HmacSha256);
        assert_ne!(blake3.blob_id(b"x"), hmac.blob_id(b"x"));
        assert_eq!(hmac.blob_id(b"x"), hmac_sha256(&hmac.id_key, b"x"));
        assert_eq!(
            blake3.blob_id(b"x"),
            *blake3::keyed_hash(&blake3.id_key, b"x").as_bytes()
        );
        // Same id key, another function: ids of one are no ids in the other.
        assert!(!blake3.same_blob_ids(&hmac));
        assert!(hmac.same_blob_ids(&hmac.clone()));
    }

    #[test]
    fn key_file_opens_only_with_its_passphrase() {
        let (file, keys) = KeyFile::create("right");
        let opened = file.open("right").unwrap().expect("opens");
        assert_eq!(opened.blob_id(b"x"), keys.blob_id(b"x"));
        assert!(file.open("wrong").unwrap().is_none());
    }

    fn tampered(change: impl FnOnce(&mut serde_json::Value)) -> Result<KeyFile, String> {
        let (file, _) = KeyFile::create("right");
        let mut value = serde_json::to_value(&file).unwrap();
        change(&mut value);
        KeyFile::parse(&serde_json::to_vec(&value).unwrap())
    }

    #[test]
    fn out_of_bounds_parameters_are_refused_before_any_derivation() {
        let cases: [(&str, serde_json::Value, &str); 10] = [
            ("parallelism", 0.into(), "parallelism 0"),
            ("iterations", 0.into(), "iterations 0"),
            (
                "iterations",
                4_000_000_000u32.into(),
                "iterations 4000000000",
            ),
            ("memory_kib", u32::MAX.into(), "memory_kib 4294967295"),
            ("memory_kib", 1.into(), "memory_kib 1"),
            ("salt", "".into(), "salt length"),
            ("salt", "abcd".into(), "salt length"),
            ("salt", "zz".into(), "salt is not hex"),
            ("kdf", "scrypt".into(), "\"scrypt\" is not supported"),
            ("data", "00".into(), "data holds 1 bytes"),
        ];
        for (field, value, expected) in cases {
            let error = tampered(|v| v[field] = value.clone()).unwrap_err();
            assert!(error.contains(expected), "{field}: {error}");
        }
        let error = tampered(|v| {
            v["memory_kib"] = (1024 * 1024).into();
            v["iterations"] = 8.into();
        })
        .unwrap_err();
        assert!(error.contains("memory_kib × iterations"), "{error}");
        let error = tampered(|v| v["version"] = 9.into()).unwrap_err();
        assert!(error.contains("version 9"), "{error}");
        let error = tampered(|v| v["extra"] = true.into()).unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
        assert!(KeyFile::parse(b"{not json").is_err());
    }

    #[test]
    fn every_parameter_of_a_version_2_key_file_is_authenticated() {
        // In bounds, but not what the keys were wrapped with: the key does
        // not open (rather than opening with parameters someone else chose).
        for (field, value) in [
            ("memory_kib", serde_json::Value::from(16 * 1024)),
            ("iterations", 2.into()),
            ("parallelism", 4.into()),
            ("salt", hex::encode([7u8; 16]).into()),
        ] {
            let file = tampered(|v| v[field] = value.clone()).unwrap();
            assert!(file.open("right").unwrap().is_none(), "{field}");
        }
        // A version-2 file relabelled as format 1 does not open either.
        let file = tampered(|v| {
            v.as_object_mut().unwrap().remove("version");
        })
        .unwrap();
        assert!(file.open("right").unwrap().is_none());
    }

    #[test]
    fn config_macs_need_the_master_keys() {
        let keys = Keys::random();
        let mac = keys.config_mac(b"config").unwrap();
        assert!(keys.verify_config_mac(b"config", &mac));
        assert!(!keys.verify_config_mac(b"config!", &mac));
        assert!(!Keys::random().verify_config_mac(b"config", &mac));
        assert!(Keys::plaintext().config_mac(b"config").is_none());
        assert!(!Keys::plaintext().verify_config_mac(b"config", &mac));
    }
}
