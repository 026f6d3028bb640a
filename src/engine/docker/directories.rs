//! [`Directories`] on Docker: host directories through helper containers
//! that bind-mount them (what `bind` blocks protect).

use super::DockerEngine;
use super::helpers::{HelperMount, holds_nothing};
use crate::engine::{ByteStream, Directories, DirectoryState, EngineError, ExportStream};
use futures_util::StreamExt;
use std::path::Path;

#[async_trait::async_trait]
impl Directories for DockerEngine {
    async fn directory(&self, path: &Path) -> Result<DirectoryState, EngineError> {
        let mount = HelperMount::Directory {
            path,
            create: false,
        };
        let guard = match self.helper_for(&mount, true).await {
            Ok(guard) => guard,
            Err(EngineError::DirectoryNotFound(_)) => return Ok(DirectoryState::Missing),
            Err(error) => return Err(error),
        };
        // The archive's first entry is the mount point itself: a directory,
        // or whatever else the path is.
        let (mut stream, release) = self.export_through(guard, "the directory").into_parts();
        let mut head = Vec::new();
        while head.len() < 64 * 1024 {
            match stream.next().await {
                Some(Ok(chunk)) => head.extend_from_slice(&chunk),
                Some(Err(error)) => {
                    drop(stream);
                    release.release().await;
                    return Err(EngineError::Api {
                        context: "reading a directory".into(),
                        message: error.to_string(),
                    });
                }
                None => break,
            }
        }
        drop(stream);
        release.release().await;
        let mut archive = tar::Archive::new(head.as_slice());
        let is_dir = archive
            .entries()
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .is_some_and(|entry| entry.header().entry_type() == tar::EntryType::Directory);
        if !is_dir {
            return Ok(DirectoryState::NotADirectory);
        }
        if holds_nothing(self.export_directory(path).await?).await? {
            Ok(DirectoryState::Empty)
        } else {
            Ok(DirectoryState::NonEmpty)
        }
    }

    async fn export_directory(&self, path: &Path) -> Result<ExportStream, EngineError> {
        let mount = HelperMount::Directory {
            path,
            create: false,
        };
        let guard = self.helper_for(&mount, true).await?;
        Ok(self.export_through(guard, "the directory"))
    }

    async fn import_directory(&self, path: &Path, tar: ByteStream) -> Result<(), EngineError> {
        self.ensure_directory(path).await?;
        let mount = HelperMount::Directory {
            path,
            create: false,
        };
        let guard = self.helper_for(&mount, false).await?;
        self.import_through(guard, tar, "writing the directory")
            .await
    }
}

impl DockerEngine {
    /// Creates `path` on the engine's host when it is missing: engines
    /// before API 1.42 cannot create a bind mount's source, so the nearest
    /// existing ancestor is mounted and the missing directories are
    /// extracted into it (mode 0755, as `mkdir -p` makes them; the restore's
    /// root entry then sets the directory's own metadata).
    async fn ensure_directory(&self, path: &Path) -> Result<(), EngineError> {
        let mut missing = Vec::new();
        let mut ancestor = path;
        let existing = loop {
            let mount = HelperMount::Directory {
                path: ancestor,
                create: false,
            };
            match self.helper_for(&mount, false).await {
                Ok(guard) => break guard,
                Err(EngineError::DirectoryNotFound(_)) => {
                    let (Some(parent), Some(name)) = (ancestor.parent(), ancestor.file_name())
                    else {
                        return Err(EngineError::DirectoryNotFound(path.display().to_string()));
                    };
                    missing.push(name.to_os_string());
                    ancestor = parent;
                }
                Err(error) => return Err(error),
            }
        };
        if missing.is_empty() {
            existing.remove().await;
            return Ok(());
        }
        let build_error = |e: std::io::Error| EngineError::Api {
            context: format!("creating {}", path.display()),
            message: e.to_string(),
        };
        let mut entries = tar::Builder::new(Vec::new());
        let mut name = std::path::PathBuf::from(crate::engine::ARCHIVE_ROOT);
        for component in missing.iter().rev() {
            name.push(component);
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
            entries
                .append_data(&mut header, &name, std::io::empty())
                .map_err(build_error)?;
        }
        let bytes = entries.into_inner().map_err(build_error)?;
        let tar: ByteStream = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(bytes))]));
        self.import_through(existing, tar, "creating a directory")
            .await
    }
}
