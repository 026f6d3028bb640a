//! The repository's `config`: its format version, identity, whether it is
//! encrypted, and the chunker's sizes. The file comes from the repository,
//! so it is untrusted: it is parsed strictly (unknown fields refused), every
//! value is bounded, and it is believed only once the repository's keys
//! vouch for it with a MAC (docs/repository-format.md, "config"). A
//! format-1 config has no MAC; it is accepted only while it says nothing
//! format 1 could not have said, and authenticated at the next write.
//!
//! Whether a repository is encrypted is never taken from the config: the
//! caller declares it, and a config that disagrees is refused, so a swapped
//! config cannot turn an encrypted repository into a plaintext one.
//!
//! This module reads and writes `config` only; keys belong to `crypto`.

use super::crypto::{IdFunction, Keys};
use super::{CHUNKER, Chunker, RepoError};
use serde::{Deserialize, Serialize};

/// Repository format version written to `config`; readers refuse newer ones.
/// 3: tree nodes carry extended attributes and sockets, which a format-2
/// reader would drop silently (attributes) or refuse as damage (sockets).
/// 4: blobs are sealed bound to their ids (a format-3 reader cannot decrypt
/// them), and new repositories name blobs with keyed BLAKE3 (`blob_ids`).
pub const FORMAT_VERSION: u32 = 4;
/// The first format whose config names its id function.
const NAMES_ID_FUNCTION: u32 = 4;
pub(crate) const HMAC_SHA256_IDS: &str = "hmac-sha256";
pub(crate) const BLAKE3_IDS: &str = "blake3";
pub(crate) const MAGIC: &str = "lifeboat repository";
/// A config is a few hundred bytes; a file far larger is not one.
pub(crate) const MAX_SIZE: u64 = 64 * 1024;
pub(crate) const ENCRYPTED: &str = "aes-256-gcm";
pub(crate) const PLAINTEXT: &str = "none";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub encryption: String,
    pub chunker: Chunker,
    /// How blobs are named: `hmac-sha256` or `blake3` (keyed). Format 4
    /// on; older formats name blobs with HMAC-SHA256 and have no field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_ids: Option<String>,
    /// HMAC-SHA256 of [`Config::canonical`] under the config key (hex);
    /// format 2 and encrypted only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// Checks chunker sizes against FastCDC's own bounds: outside them it
/// panics (debug builds), loops or cuts empty chunks.
pub(crate) fn check_chunker(chunker: Chunker) -> Result<(), String> {
    use fastcdc::v2020::{
        AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
    };
    let Chunker { min, avg, max } = chunker;
    for (name, value, low, high) in [
        ("min", min, MINIMUM_MIN, MINIMUM_MAX),
        ("avg", avg, AVERAGE_MIN, AVERAGE_MAX),
        ("max", max, MAXIMUM_MIN, MAXIMUM_MAX),
    ] {
        if !(low..=high).contains(&(value as usize)) {
            return Err(format!(
                "chunker {name} {value} is outside FastCDC's bounds {low}..={high}"
            ));
        }
        if value % 2 != 0 {
            return Err(format!(
                "chunker {name} {value} is odd; FastCDC needs even sizes"
            ));
        }
    }
    if !(min <= avg && avg <= max) {
        return Err(format!(
            "chunker sizes min {min}, avg {avg}, max {max} are not in order (min ≤ avg ≤ max)"
        ));
    }
    Ok(())
}

impl Config {
    /// A new repository's config, authenticated by `keys` when they encrypt.
    pub fn new(keys: &Keys) -> Config {
        let config = Config {
            format: MAGIC.to_string(),
            version: FORMAT_VERSION,
            id: hex::encode(rand::random::<[u8; 16]>()),
            encryption: if keys.is_encrypted() {
                ENCRYPTED
            } else {
                PLAINTEXT
            }
            .to_string(),
            chunker: CHUNKER,
            blob_ids: Some(BLAKE3_IDS.to_string()),
            mac: None,
        };
        config.authenticated(keys)
    }

    /// Tests only: the config a format-3 lifeboat wrote.
    #[cfg(test)]
    pub fn format_3(keys: &Keys) -> Config {
        let mut config = Config {
            version: 3,
            blob_ids: None,
            mac: None,
            ..Config::new(keys)
        };
        config.mac = keys.config_mac(&config.canonical()).map(hex::encode);
        config
    }

    /// Parses `bytes` and checks every value but the MAC (which needs the
    /// keys, see [`Config::verify`]).
    pub fn parse(bytes: &[u8], location: &str) -> Result<Config, RepoError> {
        let bad = |detail: String| RepoError::BadConfig {
            location: location.to_string(),
            detail,
        };
        let config: Config =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a config: {e}")))?;
        if config.format != MAGIC {
            return Err(bad(format!("format {:?} is not {MAGIC:?}", config.format)));
        }
        if config.version > FORMAT_VERSION {
            return Err(RepoError::TooNew {
                location: location.to_string(),
                found: config.version,
            });
        }
        if config.version == 0 {
            return Err(bad("format version 0 does not exist".into()));
        }
        // The id names a directory of the file-metadata cache: only hex may
        // reach a path.
        if config.id.len() != 32
            || !config
                .id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad(format!(
                "id {:?} is not 32 lowercase hex digits",
                config.id
            )));
        }
        if config.encryption != ENCRYPTED && config.encryption != PLAINTEXT {
            return Err(bad(format!(
                "encryption {:?} is neither {ENCRYPTED:?} nor {PLAINTEXT:?}",
                config.encryption
            )));
        }
        check_chunker(config.chunker).map_err(bad)?;
        match (
            config.version >= NAMES_ID_FUNCTION,
            config.blob_ids.as_deref(),
        ) {
            // An older format with `blob_ids` is refused by `verify`, as forged.
            (true, Some(HMAC_SHA256_IDS | BLAKE3_IDS)) | (false, _) => {}
            // A function a newer lifeboat introduced, not damage.
            (true, Some(other)) => {
                return Err(RepoError::UnknownIdFunction {
                    location: location.to_string(),
                    found: other.to_string(),
                });
            }
            (true, None) => {
                return Err(bad(format!(
                    "it is format {} but does not say how blobs are named (blob_ids)",
                    config.version
                )));
            }
        }
        Ok(config)
    }

    pub fn is_encrypted(&self) -> bool {
        self.encryption == ENCRYPTED
    }

    /// How this repository names blobs: what its config says from format 4
    /// on, HMAC-SHA256 before (and after an upgrade in place, which keeps it).
    pub fn id_function(&self) -> IdFunction {
        match self.blob_ids.as_deref() {
            Some(BLAKE3_IDS) => IdFunction::Blake3Keyed,
            _ => IdFunction::HmacSha256,
        }
    }

    /// What the MAC covers: every field but the MAC, one per line, in a
    /// fixed order (docs/repository-format.md).
    fn canonical(&self) -> Vec<u8> {
        let mut canonical = format!(
            "{}\nversion {}\nid {}\nencryption {}\nchunker {} {} {}\n",
            self.format,
            self.version,
            self.id,
            self.encryption,
            self.chunker.min,
            self.chunker.avg,
            self.chunker.max
        );
        if let Some(blob_ids) = &self.blob_ids {
            canonical.push_str(&format!("blob ids {blob_ids}\n"));
        }
        canonical.into_bytes()
    }

    /// This config at the current format version, with its MAC when `keys`
    /// encrypt. An older repository keeps its id function (another would
    /// give every stored blob another id: nothing would deduplicate).
    pub fn authenticated(&self, keys: &Keys) -> Config {
        let blob_ids = match self.id_function() {
            IdFunction::HmacSha256 => HMAC_SHA256_IDS,
            IdFunction::Blake3Keyed => BLAKE3_IDS,
        };
        let mut config = Config {
            version: FORMAT_VERSION,
            blob_ids: Some(blob_ids.to_string()),
            mac: None,
            ..self.clone()
        };
        config.mac = keys.config_mac(&config.canonical()).map(hex::encode);
        config
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("config serialises")
    }

    /// Whether `keys` (the ones the caller's passphrase opened, or the
    /// plaintext ones) vouch for this config. `Ok(true)`: a format-1 config,
    /// acceptable as it is, to be authenticated at the next write.
    pub fn verify(&self, keys: &Keys, location: &str) -> Result<bool, RepoError> {
        let not_authentic = |detail: String| RepoError::ConfigNotAuthentic {
            location: location.to_string(),
            detail,
        };
        // Formats before 4 named blobs with HMAC-SHA256 and never wrote the
        // field: one that has it was changed by someone (for format 1,
        // which has no MAC, someone without the keys).
        let forged_blob_ids =
            (self.version < NAMES_ID_FUNCTION && self.blob_ids.is_some()).then(|| {
                format!(
                    "it is format {}, which names blobs with HMAC-SHA256 and never wrote \
                     blob_ids, yet has them",
                    self.version
                )
            });
        if !keys.is_encrypted() {
            if let Some(detail) = forged_blob_ids {
                return Err(RepoError::BadConfig {
                    location: location.to_string(),
                    detail,
                });
            }
            if self.mac.is_some() {
                return Err(RepoError::BadConfig {
                    location: location.to_string(),
                    detail: "a plaintext repository's config has no MAC, this one has one".into(),
                });
            }
            return Ok(self.version < FORMAT_VERSION);
        }
        if let Some(detail) = forged_blob_ids {
            return Err(not_authentic(detail));
        }
        match (self.version, &self.mac) {
            (1, None) => {
                // Format 1 only ever wrote these sizes: a format-1 config that
                // names others was changed by someone without the keys.
                if self.chunker != CHUNKER {
                    return Err(not_authentic(format!(
                        "it is format 1 (which has no MAC) yet names chunker sizes {} / {} / {}, \
                         which format 1 never wrote",
                        self.chunker.min, self.chunker.avg, self.chunker.max
                    )));
                }
                Ok(true)
            }
            (1, Some(_)) => Err(not_authentic(
                "it is format 1, which has no MAC, yet carries one".into(),
            )),
            (_, None) => Err(not_authentic(format!(
                "it is format {} but has no MAC",
                self.version
            ))),
            (_, Some(mac)) => {
                let mac =
                    hex::decode(mac).map_err(|_| not_authentic("its MAC is not hex".into()))?;
                if keys.verify_config_mac(&self.canonical(), &mac) {
                    // An older format is rewritten at the next write, as
                    // format 1 is: older lifeboats then refuse the repository.
                    Ok(self.version < FORMAT_VERSION)
                } else {
                    Err(not_authentic(
                        "its MAC does not match its content under the repository's keys".into(),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunker_sizes_are_bounded_ordered_and_even() {
        assert!(check_chunker(CHUNKER).is_ok());
        for (min, avg, max, expected) in [
            (1, 1, 1, "min 1 is outside"),
            (16, 32, 64, "min 16 is outside"),
            (0, 0, 0, "min 0 is outside"),
            (1 << 20, 512 << 10, 8 << 20, "not in order"),
            (64, 256, 32 << 20, "max 33554432 is outside"),
            (513, 1024, 4096, "odd"),
        ] {
            let error = check_chunker(Chunker { min, avg, max }).unwrap_err();
            assert!(error.contains(expected), "{min}/{avg}/{max}: {error}");
        }
    }

    #[test]
    fn an_unknown_id_function_asks_for_a_newer_lifeboat() {
        let mut config = Config::new(&Keys::random());
        config.blob_ids = Some("sha3-256".into());
        let error = Config::parse(&config.to_bytes(), "/backups").unwrap_err();
        assert!(
            matches!(&error, RepoError::UnknownIdFunction { found, .. } if found == "sha3-256"),
            "{error:?}"
        );
        let said = error.to_string();
        assert!(said.starts_with("the repository at /backups names its blobs with \"sha3-256\""));
        assert!(said.ends_with(": upgrade lifeboat"), "{said}");
    }

    #[test]
    fn a_config_is_believed_only_with_a_mac_of_its_keys() {
        let keys = Keys::random();
        let config = Config::new(&keys);
        let parsed = Config::parse(&config.to_bytes(), "here").unwrap();
        assert!(!parsed.verify(&keys, "here").unwrap());
        assert!(parsed.verify(&Keys::random(), "here").is_err());

        let mut changed = parsed.clone();
        changed.chunker.min = 256 << 10;
        assert!(matches!(
            changed.verify(&keys, "here"),
            Err(RepoError::ConfigNotAuthentic { .. })
        ));
        let mut stripped = parsed.clone();
        stripped.mac = None;
        assert!(stripped.verify(&keys, "here").is_err());

        // Format 1: no MAC, believed only with format 1's own chunker (and
        // no blob_ids, which formats before 4 never wrote).
        let mut old = stripped.clone();
        old.version = 1;
        assert!(old.verify(&keys, "here").is_err(), "blob_ids in format 1");
        old.blob_ids = None;
        assert!(old.verify(&keys, "here").unwrap(), "to be upgraded");
        let upgraded = old.authenticated(&keys);
        assert_eq!(upgraded.version, FORMAT_VERSION);
        assert!(!upgraded.verify(&keys, "here").unwrap());
        old.chunker.max = 4 << 20;
        assert!(old.verify(&keys, "here").is_err());

        // Format 2, authenticated: believed, and upgraded at the next write.
        let mut format_2 = stripped.clone();
        format_2.version = 2;
        format_2.blob_ids = None;
        let format_2 = Config {
            mac: keys.config_mac(&format_2.canonical()).map(hex::encode),
            ..format_2
        };
        assert!(format_2.verify(&keys, "here").unwrap(), "to be upgraded");
    }

    #[test]
    fn hostile_configs_are_refused_with_what_is_wrong() {
        let good = String::from_utf8(Config::new(&Keys::random()).to_bytes()).unwrap();
        let id = serde_json::from_str::<serde_json::Value>(&good).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        for (from, to, expected) in [
            ("\"version\": 4", "\"version\": 5", "format version 5"),
            ("\"version\": 4", "\"version\": 0", "version 0"),
            (id.as_str(), "../../../tmp", "32 lowercase hex"),
            ("aes-256-gcm", "rot13", "neither"),
            (
                "\"version\": 4",
                "\"version\": 4, \"extra\": 1",
                "unknown field",
            ),
            (
                "\"blake3\"",
                "\"md5\"",
                "\"md5\", an id function this lifeboat does not know",
            ),
            ("\"min\": 524288", "\"min\": 1", "min 1 is outside"),
        ] {
            let changed = good.replace(from, to);
            assert_ne!(changed, good, "{from}");
            let error = Config::parse(changed.as_bytes(), "here").unwrap_err();
            assert!(error.to_string().contains(expected), "{from}: {error}");
        }
    }
}
