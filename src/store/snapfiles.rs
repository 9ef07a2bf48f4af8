//! Snapshot files: `snapshots/{org}.snap`, one per organization, each replaced whole.
//!
//! A snapshot is written to `{org}.tmp`, synced, renamed over `{org}.snap`, and the
//! directory synced: after a crash there is the old snapshot or the new one, never
//! part of one. Only once that is done does the writer learn of it, so the journal
//! entries it supersedes are never deleted before it is durable.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::StoreError;
use crate::domain::OrgId;

const SUFFIX: &str = ".snap";
const TEMPORARY: &str = ".tmp";

/// Opens the snapshot directory under `dir`: creates it, drops temporary files a crash
/// left, and moves snapshots an older version kept in sled's `snapshots` tree into
/// files (a file already there is never older: it was written from that entry or after).
pub(super) fn open(dir: &Path, db: &sled::Db) -> Result<PathBuf, StoreError> {
    let snapshots = dir.join("snapshots");
    fs::create_dir_all(&snapshots).map_err(io("create", &snapshots))?;
    for entry in fs::read_dir(&snapshots).map_err(io("list", &snapshots))? {
        let path = entry.map_err(io("list", &snapshots))?.path();
        if path.to_string_lossy().ends_with(TEMPORARY) {
            // Gone already if a snapshot thread of this process still finishing renamed it.
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io("remove", &path)(e))
                }
                _ => {}
            }
        }
    }
    let legacy = db.open_tree("snapshots")?;
    if !legacy.is_empty() {
        for kv in legacy.iter() {
            let (key, value) = kv?;
            let org = OrgId::new(String::from_utf8_lossy(&key).as_ref());
            if !path(&snapshots, &org)?.exists() {
                write(&snapshots, &org, &value)?;
            }
        }
        legacy.clear()?;
        db.flush()?;
    }
    Ok(snapshots)
}

/// Replaces `org`'s snapshot with `bytes`, durably.
pub(super) fn write(dir: &Path, org: &OrgId, bytes: &[u8]) -> Result<(), StoreError> {
    let target = path(dir, org)?;
    let temporary = target.with_extension(&TEMPORARY[1..]);
    let mut file = File::create(&temporary).map_err(io("create", &temporary))?;
    write_paced(&mut file, bytes)
        .and_then(|_| file.sync_all())
        .map_err(io("write", &temporary))?;
    fs::rename(&temporary, &target).map_err(io("rename", &temporary))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

/// How much of a snapshot may be dirty in the page cache before its write-back starts.
const WRITE_BACK_CHUNK: usize = 1 << 20;

/// Writes `bytes` a chunk at a time, starting each chunk's write-back as it is written
/// and waiting for the one before: the final sync then has little left to flush. One
/// sync of a whole large snapshot is a burst the disk serves before the journal's next
/// flush, and every acknowledgement waiting on that flush (RocksDB's `bytes_per_sync`).
fn write_paced(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    let mut offset = 0usize;
    for chunk in bytes.chunks(WRITE_BACK_CHUNK) {
        file.write_all(chunk)?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = file.as_raw_fd();
            let start = |at: usize, len: usize, flags| {
                // SAFETY: a plain syscall on a descriptor this function holds open.
                match unsafe { libc::sync_file_range(fd, at as i64, len as i64, flags) } {
                    0 => Ok(()),
                    // A failed write-back is reported here and then cleared: the
                    // final sync would not see it, and a broken snapshot would
                    // replace the journal it covers.
                    _ => Err(io::Error::last_os_error()),
                }
            };
            start(offset, chunk.len(), libc::SYNC_FILE_RANGE_WRITE)?;
            if offset >= WRITE_BACK_CHUNK {
                start(
                    offset - WRITE_BACK_CHUNK,
                    WRITE_BACK_CHUNK,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                )?;
            }
        }
        offset += chunk.len();
    }
    Ok(())
}

/// Removes `org`'s snapshot, if it has one.
pub(super) fn remove(dir: &Path, org: &OrgId) -> Result<(), StoreError> {
    let target = path(dir, org)?;
    match fs::remove_file(&target) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io("remove", &target)(e)),
        _ => Ok(()),
    }
}

/// Every snapshot file by org id, in id order.
pub(super) fn list(dir: &Path) -> Result<BTreeMap<String, PathBuf>, StoreError> {
    let mut found = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io("list", dir))? {
        let path = entry.map_err(io("list", dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(org) = name.strip_suffix(SUFFIX) {
            found.insert(org.to_owned(), path.clone());
        }
    }
    Ok(found)
}

/// The file of `org`'s snapshot. Org ids are minted by the server from a filename-safe
/// alphabet; anything else is refused rather than allowed to name another path.
fn path(dir: &Path, org: &OrgId) -> Result<PathBuf, StoreError> {
    let id = org.as_str();
    let safe = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !safe {
        return Err(StoreError::Malformed { key: id.to_owned() });
    }
    Ok(dir.join(format!("{id}{SUFFIX}")))
}

fn io<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what: format!("{what} {}", path.display()),
        source,
    }
}
