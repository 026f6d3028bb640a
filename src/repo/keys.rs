//! The repository's key files: list them, add one (another passphrase for
//! the same master keys), remove one, and write out the master keys as a
//! paper copy from which a key file can be made again when every
//! passphrase is lost. Never removes the last key, nor the one in use
//! (changing a passphrase adds the new key first, then removes the old).

use super::config::Config;
use super::crypto::{KeyFile, Keys};
use super::{FileKind, RepoError, Repository, sha256_hex};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One key file as `key list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// The file's name (its SHA-256); commands take any unique prefix.
    pub id: String,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    pub hostname: String,
    /// Whether this is the key the passphrase given opened.
    pub current: bool,
    /// Why the file is unusable, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The master keys written out by `key export`: with it, `key add
/// --master-key FILE` makes a key file for a new passphrase. Whoever holds
/// it can read the repository: keep it offline.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterKeyExport {
    /// Always [`EXPORT_KIND`].
    pub kind: String,
    /// The repository's id, so a copy is not tried on the wrong one.
    pub repository: String,
    pub created: chrono::DateTime<chrono::Utc>,
    /// The 64 master key bytes, hex.
    pub master_key: String,
}

const EXPORT_KIND: &str = "lifeboat master key";

/// A paper copy is a few hundred bytes.
const MAX_EXPORT_BYTES: usize = 64 << 10;

impl Repository {
    fn encrypted_keys(&self) -> Result<&[u8; 64], RepoError> {
        self.keys.material().ok_or_else(|| {
            RepoError::Refused(format!(
                "the repository at {} is not encrypted (`encryption {{ none = true }}`): it has \
                 no keys",
                self.location()
            ))
        })
    }

    /// Every key file, the one in use marked.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, RepoError> {
        self.encrypted_keys()?;
        let names = self.list_files(FileKind::Key)?.files;
        Ok(names
            .into_iter()
            .map(|name| {
                let current = self.key_file.as_deref() == Some(name.as_str());
                match Repository::read_key_file(self.backend(), &name) {
                    Ok(file) => KeyInfo {
                        created: Some(file.created),
                        hostname: file.hostname,
                        id: name,
                        current,
                        problem: None,
                    },
                    Err(problem) => KeyInfo {
                        id: name,
                        created: None,
                        hostname: String::new(),
                        current,
                        problem: Some(problem),
                    },
                }
            })
            .collect())
    }

    /// Adds a key file opening the same master keys with `passphrase`;
    /// returns its id.
    pub fn add_key(&self, passphrase: &str) -> Result<String, RepoError> {
        let material = *self.encrypted_keys()?;
        let _lock = self.lock_exclusive()?;
        save_key(self.backend.as_ref(), &material, passphrase)
    }

    /// Removes the key file `id` (a unique prefix): never the one in use,
    /// nor the last one. Returns its full id.
    pub fn remove_key(&self, id: &str) -> Result<String, RepoError> {
        self.encrypted_keys()?;
        let _lock = self.lock_exclusive()?;
        let names = self.list_files(FileKind::Key)?.files;
        let matching: Vec<&String> = names.iter().filter(|n| n.starts_with(id)).collect();
        let name = match matching.as_slice() {
            [] => {
                return Err(RepoError::Refused(format!(
                    "no key {id} in the repository at {}: `lifeboat key list` shows them",
                    self.location()
                )));
            }
            [one] => (*one).clone(),
            _ => {
                return Err(RepoError::Refused(format!(
                    "key id prefix {id} is ambiguous: give more characters"
                )));
            }
        };
        if self.key_file.as_deref() == Some(name.as_str()) {
            return Err(RepoError::Refused(format!(
                "key {} is the one this passphrase opens: to change the passphrase use `lifeboat \
                 key passwd`; to remove this key, open the repository with another one",
                &name[..8.min(name.len())]
            )));
        }
        let usable = names
            .iter()
            .filter(|n| **n != name)
            .filter(|n| Repository::read_key_file(self.backend(), n).is_ok())
            .count();
        if usable == 0 {
            return Err(RepoError::Refused(
                "it is the last usable key: without one nobody can open the repository".into(),
            ));
        }
        self.backend
            .remove(FileKind::Key, &name)
            .map_err(RepoError::io(format!("removing key {name}")))?;
        Ok(name)
    }

    /// Replaces the key in use by one for `passphrase`: the new key is
    /// written (and proven to open) before the old one is removed. Returns
    /// (new id, removed id).
    pub fn change_passphrase(&self, passphrase: &str) -> Result<(String, String), RepoError> {
        let material = *self.encrypted_keys()?;
        let _lock = self.lock_exclusive()?;
        let old = self.key_file.clone().ok_or_else(|| {
            RepoError::Refused("no key file was used to open the repository".into())
        })?;
        let new = save_key(self.backend.as_ref(), &material, passphrase)?;
        let reopened = Repository::read_key_file(self.backend(), &new)
            .and_then(|file| file.open(passphrase))
            .map_err(|detail| RepoError::BadKeyFile {
                file: new.clone(),
                detail,
            })?;
        if reopened.and_then(|k| k.material().copied()) != Some(material) {
            return Err(RepoError::Refused(
                "the new key did not open the repository: the old one is kept".into(),
            ));
        }
        self.backend
            .remove(FileKind::Key, &old)
            .map_err(RepoError::io(format!("removing key {old}")))?;
        Ok((new, old))
    }

    /// The master keys as a paper copy.
    pub fn export_master_key(&self) -> Result<MasterKeyExport, RepoError> {
        let material = self.encrypted_keys()?;
        Ok(MasterKeyExport {
            kind: EXPORT_KIND.to_string(),
            repository: self.id().to_string(),
            created: chrono::Utc::now(),
            master_key: hex::encode(material),
        })
    }

    /// Makes a key file for `passphrase` from a paper copy of the master
    /// keys, for a repository none of whose passphrases is known any more.
    /// The copy must vouch for the repository's config (its MAC), so a
    /// copy of another repository's keys is refused. Returns the new id.
    pub fn add_key_from_export(
        backend: Arc<dyn super::Backend>,
        export: &[u8],
        passphrase: &str,
    ) -> Result<String, RepoError> {
        let location = backend.location();
        let refused =
            |why: &str| RepoError::Refused(format!("the master key file is not usable: {why}"));
        if export.len() > MAX_EXPORT_BYTES {
            return Err(refused("far larger than a key"));
        }
        let parsed: MasterKeyExport =
            serde_json::from_slice(export).map_err(|_| refused("not a `lifeboat key export`"))?;
        if parsed.kind != EXPORT_KIND {
            return Err(refused("not a `lifeboat key export`"));
        }
        let material: [u8; 64] = hex::decode(&parsed.master_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| refused("its master_key is not 128 hex digits"))?;
        let config = Config::parse(&Repository::load_config_bytes(backend.as_ref())?, &location)?;
        if parsed.repository != config.id {
            return Err(refused(&format!(
                "it is of repository {}, this is {}",
                parsed.repository, config.id
            )));
        }
        let keys = Keys::from_material(&material);
        match config.verify(&keys, &location) {
            // Current, or an older format its MAC vouches for (format 2 on).
            Ok(false) => {}
            Ok(true) if config.mac.is_some() => {}
            // A format-1 config has no MAC: nothing would prove the copy right.
            Ok(true) => {
                return Err(refused(
                    "this repository's config (format 1) carries no MAC to check it against; \
                     any apply with a working passphrase upgrades it",
                ));
            }
            Err(_) => return Err(refused("it does not vouch for this repository's config")),
        }
        save_key(backend.as_ref(), &material, passphrase)
    }
}

/// Writes a key file for `material` under `passphrase`; returns its name.
fn save_key(
    backend: &dyn super::Backend,
    material: &[u8; 64],
    passphrase: &str,
) -> Result<String, RepoError> {
    let file = KeyFile::wrap(material, passphrase);
    let bytes = serde_json::to_vec_pretty(&file).expect("key files serialise");
    let name = sha256_hex(&bytes);
    backend
        .save(FileKind::Key, &name, &bytes)
        .map_err(RepoError::io(format!(
            "writing a key to {}",
            backend.location()
        )))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::super::backend::memory::MemoryBackend;
    use super::super::{Backend, RepoOptions};
    use super::*;

    fn open(backend: &Arc<MemoryBackend>, passphrase: &str) -> Result<Repository, RepoError> {
        Repository::open(backend.clone(), Some(passphrase), RepoOptions::default())
    }

    #[test]
    fn keys_are_added_changed_removed_but_never_the_last_or_the_one_in_use() {
        let backend = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), Some("first")).unwrap();
        let repository = open(&backend, "first").unwrap();
        let listed = repository.list_keys().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].current);
        let error = repository.remove_key(&listed[0].id[..8]).unwrap_err();
        assert!(error.to_string().contains("key passwd"), "{error}");

        let second = repository.add_key("second").unwrap();
        let by_second = open(&backend, "second").unwrap();
        assert_eq!(by_second.id(), repository.id());
        // The first key removed through the second.
        by_second.remove_key(&listed[0].id[..10]).unwrap();
        assert!(matches!(
            open(&backend, "first").unwrap_err(),
            RepoError::WrongPassphrase(_)
        ));
        // The last key is never removed (here: through a fresh handle of the same key).
        let error = by_second.remove_key(&second[..8]).unwrap_err();
        assert!(error.to_string().contains("passwd"), "{error}");

        let (third, removed) = by_second.change_passphrase("third").unwrap();
        assert_eq!(removed, second);
        assert!(open(&backend, "second").is_err());
        let by_third = open(&backend, "third").unwrap();
        assert_eq!(by_third.list_keys().unwrap()[0].id, third);
        assert_eq!(backend.list(FileKind::Key).unwrap().len(), 1);
    }

    #[test]
    fn a_paper_copy_makes_a_key_again_only_for_its_own_repository() {
        let backend = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), Some("lost")).unwrap();
        let export = open(&backend, "lost").unwrap().export_master_key().unwrap();
        let bytes = serde_json::to_vec(&export).unwrap();
        for name in backend.list(FileKind::Key).unwrap() {
            backend.remove(FileKind::Key, &name).unwrap();
        }
        Repository::add_key_from_export(backend.clone(), &bytes, "found").unwrap();
        open(&backend, "found").unwrap();

        let other = Arc::new(MemoryBackend::default());
        Repository::init(other.clone(), Some("x")).unwrap();
        let error = Repository::add_key_from_export(other.clone(), &bytes, "y").unwrap_err();
        assert!(error.to_string().contains("it is of repository"), "{error}");
        let mut forged = export;
        forged.repository = open(&other, "x").unwrap().id().to_string();
        let error =
            Repository::add_key_from_export(other, &serde_json::to_vec(&forged).unwrap(), "y")
                .unwrap_err();
        assert!(error.to_string().contains("does not vouch"), "{error}");
    }

    #[test]
    fn a_new_repository_is_opened_with_the_key_it_was_created_with_derived_once() {
        use super::super::crypto::tests::key_derivations_of;
        let backend = Arc::new(MemoryBackend::default());
        let (created, derivations) = key_derivations_of(|| {
            Repository::init_and_open(backend.clone(), Some("pass"), RepoOptions::default())
        });
        let created = created.unwrap();
        assert_eq!(derivations, 1, "argon2 runs once for a new repository");
        // The handle knows its key file, as one opened by passphrase does.
        let listed = created.list_keys().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].current);
        // An existing repository is opened, not created again: one derivation.
        let (reopened, derivations) = key_derivations_of(|| {
            Repository::init_and_open(backend.clone(), Some("pass"), RepoOptions::default())
        });
        assert_eq!(derivations, 1);
        assert_eq!(reopened.unwrap().id(), created.id());
        assert!(matches!(
            Repository::init_and_open(backend.clone(), Some("wrong"), RepoOptions::default()),
            Err(RepoError::WrongPassphrase(_))
        ));
        // Plaintext: nothing to derive.
        let plain = Arc::new(MemoryBackend::default());
        let (opened, derivations) = key_derivations_of(|| {
            Repository::init_and_open(plain.clone(), None, RepoOptions::default())
        });
        assert_eq!(derivations, 0);
        let again = Repository::open(plain, None, RepoOptions::default()).unwrap();
        assert_eq!(opened.unwrap().id(), again.id());
    }

    #[test]
    fn a_plaintext_repository_has_no_keys_to_manage() {
        let backend = Arc::new(MemoryBackend::default());
        Repository::init(backend.clone(), None).unwrap();
        let repository = Repository::open(backend, None, RepoOptions::default()).unwrap();
        let error = repository.list_keys().unwrap_err();
        assert!(error.to_string().contains("not encrypted"), "{error}");
    }
}
