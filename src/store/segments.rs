//! The journal's segment log: `journal/{n:016x}.log`, appended to by the writer alone.
//!
//! Each write is one frame: `len: u32 LE`, the CRC-32 of the payload as `u32 LE`, then
//! the payload, one round of the writer: groups of `(org, first seq, count, entry)`,
//! each one org's records of the round as a [`super::record::Entry`].
//!
//! A segment is extended with zeros ahead of the frames written into it (a chunk at a
//! time), so the flush of a frame carries its data alone: no file size changes with it,
//! and on ext4 no journal commit either (a third less time per flush here). A reader
//! stops at the first frame of length zero. A frame that fails its CRC where the
//! writer stopped (the last segment) is a torn write and is cut: it was never flushed,
//! so nobody was told it was done. A bad frame anywhere else is damage, and refuses to
//! start rather than drop what follows it.
//!
//! Segments go when nothing in them is needed: the writer holds each journal entry's
//! place, releases it once a durable snapshot supersedes it, and a segment with none
//! held is deleted. An idle org could pin an old segment for ever, so when a segment
//! fills, old segments that hold little are carried: what they still hold is
//! written again at the end and the old file deleted. Recovery meets an entry twice if
//! a crash came between the two, and takes either.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::StoreError;
use crate::domain::OrgId;

/// A segment's size, beyond which the next frame starts a new one.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// How much zeroed space is added at a time ahead of the frames.
const EXTEND_BYTES: u64 = 1 << 20;
const HEADER: usize = 8;
const SUFFIX: &str = ".log";

/// Where one journal entry's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

/// One journal entry as recovery read it.
pub struct Read {
    pub org: OrgId,
    pub first: u64,
    pub entry: Vec<u8>,
    pub place: Place,
}

/// A frame under construction.
pub struct Frame(Vec<u8>);

impl Frame {
    /// An empty frame.
    pub fn new() -> Frame {
        Frame(vec![0; HEADER])
    }

    /// Adds one org's entry; answers where its bytes start within the frame.
    pub fn push(&mut self, org: &OrgId, first: u64, entry: &[u8]) -> u64 {
        let org = org.as_str().as_bytes();
        self.0.extend_from_slice(
            &u16::try_from(org.len())
                .expect("org ids are short")
                .to_le_bytes(),
        );
        self.0.extend_from_slice(org);
        self.0.extend_from_slice(&first.to_le_bytes());
        self.0.extend_from_slice(
            &u32::try_from(entry.len())
                .expect("entry < 4 GiB")
                .to_le_bytes(),
        );
        let at = self.0.len() as u64;
        self.0.extend_from_slice(entry);
        at
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.0.len() == HEADER
    }

    fn seal(&mut self) -> &[u8] {
        let len = u32::try_from(self.0.len() - HEADER).expect("frame < 4 GiB");
        let crc = crc32fast::hash(&self.0[HEADER..]);
        self.0[..4].copy_from_slice(&len.to_le_bytes());
        self.0[4..8].copy_from_slice(&crc.to_le_bytes());
        &self.0
    }
}

impl Default for Frame {
    fn default() -> Self {
        Frame::new()
    }
}

/// The log as the writer holds it: the segment written to, and what each segment holds
/// that is still needed.
pub struct Log {
    dir: PathBuf,
    file: File,
    segment: u64,
    /// Where the next frame goes.
    pos: u64,
    /// How far the active segment is zeroed.
    allocated: u64,
    segment_bytes: u64,
    /// Per segment, the entries still needed in it: how many, and their bytes.
    held: BTreeMap<u64, (usize, u64)>,
    /// Whether `held` is complete: until recovery has noted what it kept, a segment
    /// that looks unheld may hold what it needs, and nothing is deleted.
    counted: bool,
    /// The next segment, being created ahead on a thread of its own: zeroing and
    /// syncing it, and syncing the directory, took milliseconds every acknowledgement
    /// waited for.
    next: Option<JoinHandle<io::Result<File>>>,
    reaper: Reaper,
}

impl Drop for Log {
    fn drop(&mut self) {
        // A segment still being created would appear after the log is gone, and a log
        // opened on the same directory in this process could then fail to create it.
        if let Some(next) = self.next.take() {
            let _ = next.join();
        }
    }
}

/// Deletes segment files on a thread of its own: unlinking a 64 MiB segment took 15-19
/// ms here (its page cache and extents freed), and a snapshot of a large org frees
/// several at once; on the writer every acknowledgement waited behind them. A file not
/// deleted when the process stops is deleted at the next start.
struct Reaper {
    tx: Option<mpsc::Sender<PathBuf>>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    fn spawn() -> io::Result<Reaper> {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let thread = std::thread::Builder::new()
            .name("store-reaper".into())
            .spawn(move || {
                for path in rx {
                    if let Err(e) = fs::remove_file(&path) {
                        if e.kind() != io::ErrorKind::NotFound {
                            tracing::warn!(path = %path.display(), error = %e, "journal segment not deleted; the next start deletes it");
                        }
                    }
                }
            })?;
        Ok(Reaper {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn remove(&self, path: PathBuf) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(path);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // What was handed over is deleted before the log is gone (tests count files).
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Log {
    /// Writes `frame` after everything written before (not yet flushed); answers the
    /// segment and offset its bytes start at. A full segment makes way for a new one.
    pub fn append(&mut self, frame: &mut Frame) -> io::Result<(u64, u64)> {
        let bytes = frame.seal();
        let len = bytes.len() as u64;
        if self.pos > 0 && self.pos + len > self.segment_bytes {
            self.roll()?;
        }
        if self.next.is_none() && self.pos + len > self.segment_bytes / 2 {
            let (dir, n) = (self.dir.clone(), self.segment + 1);
            self.next = Some(
                std::thread::Builder::new()
                    .name("store-segment".into())
                    .spawn(move || create(&dir, n))?,
            );
        }
        if self.pos + len > self.allocated {
            // One chunk more than needed, so the frame is followed by a zero length.
            let want = (self.pos + len).div_ceil(EXTEND_BYTES) * EXTEND_BYTES + EXTEND_BYTES;
            zero(&self.file, self.allocated, want - self.allocated)?;
            self.allocated = want;
        }
        self.file.write_all_at(bytes, self.pos)?;
        let at = self.pos;
        self.pos += len;
        Ok((self.segment, at))
    }

    /// The segment frames go to now.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Makes everything appended durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// A segment, to read entries of.
    pub fn open_segment(&self, segment: u64) -> io::Result<File> {
        File::open(segment_path(&self.dir, segment))
    }

    /// The bytes of an entry of the segment `file`.
    pub fn read(file: &File, place: Place) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; place.len as usize];
        file.read_exact_at(&mut buf, place.offset)?;
        Ok(buf)
    }

    /// Notes an entry as needed.
    pub fn hold(&mut self, place: Place) {
        let held = self.held.entry(place.segment).or_default();
        held.0 += 1;
        held.1 += u64::from(place.len);
    }

    /// Notes an entry as no longer needed; deletes its segment when that held the last.
    pub fn release(&mut self, place: Place) {
        let Some(held) = self.held.get_mut(&place.segment) else {
            return;
        };
        held.0 -= 1;
        held.1 -= u64::from(place.len);
        if held.0 == 0 {
            self.held.remove(&place.segment);
            if self.counted && place.segment != self.segment {
                self.reaper.remove(segment_path(&self.dir, place.segment));
            }
        }
    }

    /// Old segments worth carrying: little of them is still needed, oldest first.
    pub fn sparse(&self) -> Vec<u64> {
        self.held
            .iter()
            .filter(|(&s, &(_, bytes))| s != self.segment && bytes <= self.segment_bytes / 8)
            .map(|(&s, _)| s)
            .collect()
    }

    /// Starts the next segment, durably named, and deletes the one it follows if
    /// nothing in that is needed.
    fn roll(&mut self) -> io::Result<()> {
        // Whatever was written to it is durable before anything goes to the next: a
        // reader takes a bad frame anywhere but in the last segment for damage.
        self.file.sync_data()?;
        let next = self.segment + 1;
        self.file = match self.next.take() {
            Some(created) => created
                .join()
                .map_err(|_| io::Error::other("segment creation panicked"))??,
            None => create(&self.dir, next)?,
        };
        let previous = std::mem::replace(&mut self.segment, next);
        self.pos = 0;
        self.allocated = EXTEND_BYTES;
        if self.counted && !self.held.contains_key(&previous) {
            self.reaper.remove(segment_path(&self.dir, previous));
        }
        Ok(())
    }

    /// Deletes every segment but the active one that holds nothing needed, and from now
    /// on deletes each as its last needed entry is released: recovery has noted (with
    /// [`Log::hold`]) everything it kept.
    pub fn counted(&mut self) -> io::Result<()> {
        self.counted = true;
        // Only older ones: a newer one is the next, being created ahead (empty ones a
        // crash left were removed at open).
        for n in list(&self.dir)? {
            if n < self.segment && !self.held.contains_key(&n) {
                remove(&self.dir, n)?;
            }
        }
        Ok(())
    }
}

/// Opens the log under `dir` and reads every entry in it, in the order written.
pub fn open(dir: &Path, segment_bytes: u64) -> Result<(Log, Vec<Read>), StoreError> {
    let dir = dir.join("journal");
    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    let mut segments = list(&dir).map_err(io_err("list", &dir))?;
    // A segment created ahead that a crash left before anything was written to it is
    // not where the writer stopped: the one before it is.
    while segments.len() > 1 {
        let path = segment_path(&dir, *segments.last().expect("more than one"));
        let mut head = [0u8; HEADER];
        let empty = File::open(&path)
            .and_then(|f| match f.read_exact_at(&mut head, 0) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(true),
                read => read.map(|()| head == [0; HEADER]),
            })
            .map_err(io_err("read", &path))?;
        if !empty {
            break;
        }
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        segments.pop();
    }
    let mut read = Vec::new();
    let mut tail = None;
    for (i, &segment) in segments.iter().enumerate() {
        let path = segment_path(&dir, segment);
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        let last = i + 1 == segments.len();
        let end = match parse(segment, &bytes, &mut read) {
            Ok(end) => end,
            // The last segment ends where the writer stopped: a frame it was writing then
            // was never flushed, never acknowledged, and is cut.
            Err(Bad::Unsound(at)) if last && torn(&bytes, at as usize) => {
                keep_cut(&path, &bytes, at).map_err(io_err("keep the cut tail of", &path))?;
                at
            }
            Err(Bad::Unsound(at) | Bad::Garbled(at)) => {
                return Err(StoreError::Malformed {
                    key: format!("{}@{at}", path.display()),
                })
            }
        };
        if last {
            tail = Some((segment, end, bytes.len() as u64));
        }
    }
    let (segment, pos, allocated) = tail.unwrap_or((1, 0, 0));
    let path = segment_path(&dir, segment);
    let file = if segments.is_empty() {
        create(&dir, segment).map_err(io_err("create", &path))?
    } else {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?
    };
    // Whatever a torn frame left after the end goes (not just its first pages: a power
    // loss can keep any of them), so the next frame written there is followed by
    // zeros, not by the torn frame's tail, once its segment is no longer the last.
    // It is synced too: the process that wrote its last frames may have died before
    // their flush, and they must not be lost once this segment is not the last.
    let allocated = if segments.is_empty() {
        EXTEND_BYTES
    } else {
        (if pos < allocated {
            file.set_len(pos)
        } else {
            Ok(())
        })
        .and_then(|_| file.sync_all())
        .map_err(io_err("cut", &path))?;
        pos
    };
    let reaper = Reaper::spawn().map_err(io_err("start the reaper of", &dir))?;
    let log = Log {
        dir,
        file,
        segment,
        pos,
        allocated,
        segment_bytes,
        held: BTreeMap::new(),
        counted: false,
        next: None,
        reaper,
    };
    Ok((log, read))
}

/// The segments in `dir`, oldest first.
fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_str().unwrap_or("");
        // Only names this module writes: another spelling of the same number would be
        // read under the path `segment_path` makes.
        if let Some(n) = name.strip_suffix(SUFFIX).filter(|n| n.len() == 16) {
            if let Ok(n) = u64::from_str_radix(n, 16) {
                segments.push(n);
            }
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// Whether the bad frame at `at` is a torn write: no sound frame starts anywhere after
/// it. Frames are flushed one after another, so one followed by a sound frame is
/// damage, and what follows was acknowledged. (Its header cannot be trusted to say
/// where it ends: a power loss can keep some of a header's bytes and not others.) Only
/// run at start, on the last segment, after a crash.
fn torn(bytes: &[u8], at: usize) -> bool {
    !(at + 1..bytes.len().saturating_sub(HEADER)).any(|p| {
        let len = u32::from_le_bytes(bytes[p..p + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[p + 4..p + HEADER].try_into().expect("4 bytes"));
        len > 0
            && bytes
                .get(p + HEADER..p + HEADER + len)
                .is_some_and(|payload| crc32fast::hash(payload) == crc)
    })
}

/// Reads the frames of one segment into `read`; answers where they end, or the offset
/// of the first frame that is not whole and sound (those before it are read).
fn parse(segment: u64, bytes: &[u8], read: &mut Vec<Read>) -> Result<u64, Bad> {
    let mut pos = 0usize;
    loop {
        let Some(header) = bytes.get(pos..pos + HEADER) else {
            return Ok(pos as u64);
        };
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            return Ok(pos as u64);
        }
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let start = pos + HEADER;
        let unsound = Bad::Unsound(pos as u64);
        let payload = bytes.get(start..start + len).ok_or(unsound)?;
        if crc32fast::hash(payload) != crc {
            return Err(unsound);
        }
        // Sound, so written whole as it is: not a torn write, whatever follows.
        let found = groups(segment, start as u64, payload).ok_or(Bad::Garbled(pos as u64))?;
        read.extend(found);
        pos = start + len;
    }
}

/// A frame `parse` cannot read, by offset.
#[derive(Clone, Copy)]
enum Bad {
    /// Cut short or failing its CRC: torn, if nothing sound follows it.
    Unsound(u64),
    /// Sound, and still not a frame this version wrote.
    Garbled(u64),
}

/// Decodes a frame's payload, at `base` in `segment`, into its entries.
fn groups(segment: u64, base: u64, payload: &[u8]) -> Option<Vec<Read>> {
    let mut found = Vec::new();
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let b = payload.get(*at..*at + n)?;
        *at += n;
        Some(b)
    };
    while at < payload.len() {
        let org_len = u16::from_le_bytes(take(&mut at, 2)?.try_into().ok()?) as usize;
        let org = std::str::from_utf8(take(&mut at, org_len)?).ok()?;
        let first = u64::from_le_bytes(take(&mut at, 8)?.try_into().ok()?);
        let len = u32::from_le_bytes(take(&mut at, 4)?.try_into().ok()?);
        let offset = base + at as u64;
        let entry = take(&mut at, len as usize)?.to_vec();
        found.push(Read {
            org: OrgId::new(org),
            first,
            entry,
            place: Place {
                segment,
                offset,
                len,
            },
        });
    }
    Some(found)
}

/// Keeps a copy of what is cut from a segment, in `{segment}.log.cut-{offset}` (not read
/// again), so that a cut taken wrongly for a torn write can still be looked at.
fn keep_cut(path: &Path, bytes: &[u8], at: u64) -> io::Result<()> {
    let tail = &bytes[at as usize..];
    let end = tail.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end == 0 {
        return Ok(());
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".cut-{at}"));
    let copy = File::create(&name)?;
    copy.write_all_at(&tail[..end], 0)?;
    copy.sync_all()
}

fn zero(file: &File, at: u64, len: u64) -> io::Result<()> {
    let chunk = vec![0u8; EXTEND_BYTES as usize];
    let mut done = 0;
    while done < len {
        let n = EXTEND_BYTES.min(len - done);
        file.write_all_at(&chunk[..n as usize], at + done)?;
        done += n;
    }
    Ok(())
}

/// Creates segment `n` zeroed for its first frames, and makes its name durable.
fn create(dir: &Path, n: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(segment_path(dir, n))?;
    zero(&file, 0, EXTEND_BYTES)?;
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

fn remove(dir: &Path, n: u64) -> io::Result<()> {
    match fs::remove_file(segment_path(dir, n)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}{SUFFIX}"))
}

fn io_err<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what: format!("{what} {}", path.display()),
        source,
    }
}
