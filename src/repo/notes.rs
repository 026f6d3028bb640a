//! What a backup or restore of a file tree could not carry exactly, as
//! values: the access mode's limits (Docker's archive carries no sockets and
//! no extended attributes but `security.capability`, its untar writes holes
//! as zeros) and what changed while the tree was read. `cli` renders them
//! beside the copy; nothing here prints.

use serde::Serialize;

/// Paths a note names in full; the rest are only counted.
const NAMED: usize = 5;

/// Some of the entries a note is about: the first few paths and how many.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Paths {
    pub first: Vec<String>,
    pub count: u64,
}

impl Paths {
    pub fn push(&mut self, path: String) {
        if self.first.len() < NAMED {
            self.first.push(path);
        }
        self.count += 1;
    }

    /// Adds `other`'s entries after these.
    pub fn extend(&mut self, other: Paths) {
        let named = other.first.len() as u64;
        for path in other.first {
            self.push(path);
        }
        self.count += other.count - named;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl std::fmt::Display for Paths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.first.join(", "))?;
        let rest = self.count.saturating_sub(self.first.len() as u64);
        if rest > 0 {
            write!(f, " and {rest} more")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum TreeNote {
    /// A backup through the engine's archive: it carries no extended
    /// attributes other than `security.capability`, no POSIX ACLs and no
    /// sockets, so whatever of those the tree had is not in the snapshot.
    ArchiveOmitsMetadata,
    /// Files written while being copied: through the archive, those whose
    /// modification time lies within the backup (seen in the headers);
    /// read directly, those whose size, times or inode differ after the
    /// read from what the walk listed (stored as read, at most the listed
    /// size). Their copy may be torn or truncated.
    ChangedWhileRead { paths: Paths },
    /// Entries removed between the walk listing them and the backup
    /// reading them (direct access): not in the snapshot, as if removed
    /// just before it.
    VanishedWhileRead { paths: Paths },
    /// Extended attributes with names that are not UTF-8 (the tree and the
    /// archive format both name attributes in text): not backed up.
    UnnamedAttributes { paths: Paths },
    /// A backup through the engine's archive: hard links to a file an
    /// exclude left out. The archive carries the content under the first
    /// name only, so they are not in the snapshot (read directly, they are).
    LinksToExcluded { paths: Paths },
    /// A restore through the engine's archive: sockets cannot travel in it
    /// and were not restored.
    SocketsNotRestored { paths: Paths },
    /// A restore through the engine's archive: these files hold blocks of
    /// zeros that the engine writes out, so they take more disk than in a
    /// direct restore (which keeps holes).
    HolesWrittenOut { paths: Paths },
}

impl std::fmt::Display for TreeNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TreeNote::ArchiveOmitsMetadata => write!(
                f,
                "read through the engine's archive, which carries no extended attributes \
                 other than security.capability, no ACLs and no sockets: any the tree has \
                 are not in the snapshot (direct access carries them)"
            ),
            TreeNote::ChangedWhileRead { paths } => write!(
                f,
                "{} file(s) changed while the backup read them; their copy may be torn or \
                 truncated (set `consistency` to stop or pause the service): {paths}",
                paths.count
            ),
            TreeNote::VanishedWhileRead { paths } => write!(
                f,
                "{} file(s) or directories were removed while the backup read the tree and \
                 are not in the snapshot (set `consistency` to stop or pause the service): \
                 {paths}",
                paths.count
            ),
            TreeNote::UnnamedAttributes { paths } => write!(
                f,
                "extended attributes whose names are not UTF-8 were not backed up: {paths}"
            ),
            TreeNote::LinksToExcluded { paths } => write!(
                f,
                "{} hard link(s) to a file an exclude leaves out are not in the snapshot: \
                 the engine's archive carries the content under the excluded name only \
                 (direct access stores them): {paths}",
                paths.count
            ),
            TreeNote::SocketsNotRestored { paths } => write!(
                f,
                "{} socket(s) not restored: the engine's archive cannot carry them \
                 (a direct restore makes them): {paths}",
                paths.count
            ),
            TreeNote::HolesWrittenOut { paths } => write!(
                f,
                "{} sparse file(s) written out in full by the engine's archive import, \
                 holes as zeros (a direct restore keeps holes): {paths}",
                paths.count
            ),
        }
    }
}
