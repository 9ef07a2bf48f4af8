//! Backups: one file holding what a data directory needs to start from — the token
//! signing key, a snapshot of every organization, and each one's audit log up to its
//! snapshot — and the restore that writes a fresh data directory from it.
//!
//! Format: `SKBK`, a version byte, then sections, each a tag byte and its fields
//! (lengths little-endian): `1` the signing seed (32 bytes); `2` a snapshot (`u32`
//! length + org id, `u64` length + the snapshot file's bytes, which carry their own
//! CRC); `3` an audit entry (`u32` length + key, `u32` length + value); `0xFF` the end,
//! with a CRC-32 of everything before it. A cut or damaged file is refused whole.

use std::path::Path;

use super::{snapfiles, snapshot, StoreError};
use crate::domain::OrgId;

const MAGIC: &[u8; 4] = b"SKBK";
const VERSION: u8 = 1;
const SEED: u8 = 1;
const SNAPSHOT: u8 = 2;
const AUDIT: u8 = 3;
const END: u8 = 0xFF;

/// A sled key and value, as stored.
pub type Raw = (Vec<u8>, Vec<u8>);

/// What a backup holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The token signing key's seed: tokens issued before stay verifiable.
    pub seed: [u8; 32],
    /// Each organization's snapshot file, as written to `snapshots/{org}.snap`.
    pub snapshots: Vec<(OrgId, Vec<u8>)>,
    /// Audit entries as sled keys and values.
    pub audit: Vec<Raw>,
}

impl Backup {
    /// The backup file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let size = self
            .snapshots
            .iter()
            .map(|(_, s)| s.len() + 64)
            .sum::<usize>()
            + self
                .audit
                .iter()
                .map(|(k, v)| k.len() + v.len() + 9)
                .sum::<usize>();
        let mut out = Vec::with_capacity(size + 64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(SEED);
        out.extend_from_slice(&self.seed);
        for (org, bytes) in &self.snapshots {
            out.push(SNAPSHOT);
            put(&mut out, org.as_str().as_bytes(), false);
            put(&mut out, bytes, true);
        }
        for (key, value) in &self.audit {
            out.push(AUDIT);
            put(&mut out, key, false);
            put(&mut out, value, false);
        }
        out.push(END);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a backup file, checking its CRC and every snapshot in it.
    pub fn decode(bytes: &[u8]) -> Result<Backup, StoreError> {
        let bad = |why: &str| StoreError::Backup(why.to_owned());
        let body = bytes
            .len()
            .checked_sub(4)
            .map(|n| &bytes[..n])
            .ok_or_else(|| bad("too short"))?;
        let crc = u32::from_le_bytes(bytes[body.len()..].try_into().expect("4 bytes"));
        if crc32fast::hash(body) != crc {
            return Err(bad("checksum mismatch: cut short or damaged"));
        }
        let mut r = Reader(body);
        if r.take(4)? != MAGIC {
            return Err(bad("not a seatkeeper backup"));
        }
        if r.take(1)? != [VERSION] {
            return Err(bad("a version this build cannot read"));
        }
        let mut backup = Backup::default();
        let mut seeded = false;
        loop {
            match r.take(1)?[0] {
                SEED => {
                    backup.seed = r.take(32)?.try_into().expect("32 bytes");
                    seeded = true;
                }
                SNAPSHOT => {
                    let org = r.field(false)?;
                    let org = std::str::from_utf8(org).map_err(|_| bad("org id not UTF-8"))?;
                    let bytes = r.field(true)?;
                    let decoded = snapshot::decode(org.as_bytes(), bytes)?;
                    if decoded.state.id.as_str() != org {
                        return Err(bad("a snapshot filed under another org"));
                    }
                    backup.snapshots.push((OrgId::new(org), bytes.to_vec()));
                }
                AUDIT => {
                    let key = r.field(false)?.to_vec();
                    let value = r.field(false)?.to_vec();
                    backup.audit.push((key, value));
                }
                END if r.0.is_empty() && seeded => return Ok(backup),
                _ => return Err(bad("unknown section")),
            }
        }
    }

    /// Writes a fresh data directory from this backup: the signing key and the audit
    /// log into a new sled store, the snapshots into `snapshots/`, each durable before
    /// this answers. Refuses a directory that holds anything but an operator token: the
    /// server would recover a leftover snapshot file as an organization.
    pub fn restore(&self, dir: &Path) -> Result<(), StoreError> {
        let store = dir.join("store");
        let listed = std::fs::read_dir(dir).map_err(|source| StoreError::Io {
            what: format!("list {}", dir.display()),
            source,
        })?;
        let tolerated = ["operator_token", "lost+found"];
        if let Some(found) = listed
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .find(|name| !tolerated.iter().any(|t| name == t))
        {
            return Err(StoreError::Backup(format!(
                "{} is not empty (it holds {}); restore into an empty directory",
                dir.display(),
                found.to_string_lossy()
            )));
        }
        // Marks the directory unfinished until everything is durable: the store refuses
        // to open one a crash left half restored (see [`check_restored`]).
        let marker = dir.join(RESTORING);
        let io = |what: &str, e: std::io::Error| StoreError::Io {
            what: format!("{what} {}", marker.display()),
            source: e,
        };
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::File::open(dir))
            .and_then(|d| d.sync_all())
            .map_err(|e| io("create", e))?;
        let db = sled::Config::new().path(&store).open()?;
        db.open_tree("meta")?
            .insert(super::SIGNING_KEY, &self.seed[..])?;
        let audit = db.open_tree("audit")?;
        for (key, value) in &self.audit {
            audit.insert(key.as_slice(), value.as_slice())?;
        }
        let snapshots = snapfiles::open(dir, &db)?;
        for (org, bytes) in &self.snapshots {
            snapfiles::write(&snapshots, org, bytes)?;
        }
        db.flush()?;
        drop(db);
        super::sync_dirs(dir)?;
        std::fs::remove_file(&marker).map_err(|e| io("remove", e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync the directory of", e))
    }
}

/// Present while a restore is writing a data directory.
const RESTORING: &str = "RESTORING";

/// Refuses a data directory a restore did not finish.
pub fn check_restored(dir: &Path) -> Result<(), StoreError> {
    if dir.join(RESTORING).exists() {
        return Err(StoreError::Backup(format!(
            "{} holds an unfinished restore; restore again into an empty directory",
            dir.display()
        )));
    }
    Ok(())
}

fn put(out: &mut Vec<u8>, bytes: &[u8], long: bool) {
    if long {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    } else {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(StoreError::Backup("cut short".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn field(&mut self, long: bool) -> Result<&'a [u8], StoreError> {
        let len = if long {
            u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")) as usize
        } else {
            u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize
        };
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backup reads back as written, and any cut or changed byte is refused whole.
    #[test]
    fn a_damaged_backup_is_refused() {
        let backup = Backup {
            seed: [7; 32],
            snapshots: Vec::new(),
            audit: vec![
                (b"org_a\0k".to_vec(), b"{}".to_vec()),
                (b"k2".to_vec(), Vec::new()),
            ],
        };
        let bytes = backup.encode();
        assert_eq!(Backup::decode(&bytes).unwrap(), backup);
        for cut in 0..bytes.len() {
            assert!(Backup::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 0x20;
            assert!(Backup::decode(&changed).is_err(), "byte {at} changed");
        }
    }
}
