//! The legacy record of what the last apply applied (before run records,
//! `repo::runs`): an opaque JSON value from the caller (the repository
//! does not interpret it), stamped with time and host. Stored like
//! snapshots (compressed, encrypted, named by content hash); writing a new
//! one removed the older ones. Read so that `plan` keeps working on a
//! repository nothing has converted yet; the first run record written
//! converts it and then removes it. A damaged record is passed over (the
//! newest intact one wins; `check` notes it).

use super::backend::FileKind;
use super::{RepoError, Repository};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppliedRecord {
    pub time: DateTime<Utc>,
    pub hostname: String,
    pub settings: serde_json::Value,
}

impl Repository {
    /// Records `settings` the way lifeboat did before run records (the
    /// latest applied, then older records removed): what repositories of
    /// older versions hold, kept to test and exercise their conversion.
    pub fn record_applied(&self, settings: serde_json::Value) -> Result<(), RepoError> {
        let record = AppliedRecord {
            time: Utc::now(),
            hostname: crate::host::hostname(),
            settings,
        };
        let older = self.list_files(FileKind::Applied)?.files;
        let bytes = serde_json::to_vec(&record).expect("records serialise");
        let (name, _) = self.save_file(FileKind::Applied, &bytes)?;
        for old in older.iter().filter(|n| **n != name) {
            // Another apply may have removed it already.
            let _ = self.backend().remove(FileKind::Applied, old);
        }
        Ok(())
    }

    /// The newest intact legacy applied record, if the repository still has one.
    pub fn last_applied(&self) -> Result<Option<AppliedRecord>, RepoError> {
        let mut newest: Option<AppliedRecord> = None;
        for name in self.list_files(FileKind::Applied)?.files {
            let record = match self.load_applied(&name) {
                Ok(record) => record,
                Err(RepoError::Corrupt { .. }) => continue,
                // Removed by a concurrent apply between list and load.
                Err(RepoError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if newest.as_ref().is_none_or(|n| n.time < record.time) {
                newest = Some(record);
            }
        }
        Ok(newest)
    }

    pub(crate) fn load_applied(&self, name: &str) -> Result<AppliedRecord, RepoError> {
        let bytes = self.load_file(FileKind::Applied, name)?;
        serde_json::from_slice(&bytes).map_err(|e| RepoError::Corrupt {
            what: format!("applied/{name}"),
            detail: e.to_string(),
        })
    }
}
