//! The service's durable state: which chunks of the series are finished and their partial
//! sums, kept by the one service that holds the directory's [`Lock`] in two files: a
//! snapshot, `state`, replaced atomically now and then (a new temporary file, fsync, rename,
//! fsync of the directory), and a journal, `journal`, to which each finished chunk appends
//! one line. Saving a chunk costs one small write, whatever the number of chunks done.
//!
//! ```text
//! state                                 journal
//! pifork-state v3                       pifork-journal v1
//! kernel 2 a778f548                     follows 404c9e45 1c0a7d32
//! terms 1000000000 917b307f             done 2 3e4ad7f29abcaf30 0.125 5e0f9c44
//! chunk 10000000 4674e1a6               done 3 be4ad7f29abc0f31 0.131 77c1d0e3
//! elapsed 0.062 a16782b0                ...    (a line per chunk since the snapshot)
//! done 0 3fe921fb46d833cc 404c9e45
//! done 1 3e4ad7f29abcaf30 241b29b8
//! ...                                   (a line per chunk when it was written)
//! result 400921fb53c8d4f1 ........      (once every chunk is done)
//! end 100 ........
//! ```
//!
//! Every line after the first of both files ends with a CRC-32C of the file up to it
//! ([`seal`]), every partial sum must be the series' own, and a file written by another
//! version of the format or of the kernel is refused rather than mixed. The journal names the
//! snapshot it follows by the checksum that ends it ([`identity`]); a journal that follows
//! another (a compaction was cut short after it replaced the snapshot) is stale and ignored.
//! Only a regular file of bounded size is read ([`MAX_BYTES`], [`MAX_JOURNAL_BYTES`]), never
//! through a link: a FIFO, a device, a directory or a symbolic link in its place is refused
//! at once, and the journal, written in place, must have no other hard link. A refused file
//! is never written to.
//!
//! What a stop costs: a crash or a SIGKILL of the service, at any instant, loses no chunk
//! recorded (each record is written before the next chunk is handed out, and what is
//! written survives the process); an append cut short by it is dropped when the service
//! starts again (see `journal.rs` for exactly what is dropped and what is refused as
//! damage). A power cut or a crash of the system loses at most the chunks recorded in the
//! last [`SYNC_EVERY`] (one second): the journal is synced at most that often, and at a stop,
//! not per chunk; a snapshot is synced before it replaces the old one. Neither gives a
//! wrong pi: a chunk lost is computed again.
//!
//! `pifork status` takes no lock: it reads the journal, then the snapshot. The journal only
//! grows by whole records between compactions, and a compaction replaces the snapshot before
//! the journal; so the snapshot read is the one the journal follows (the journal's records
//! are added) or a newer one, which holds them already (the journal is ignored).
//!
//! ```text
//! job.rs        State: the job, its finished chunks and their sums; check_job
//! format.rs     the snapshot's text: State::to_text and State::parse, checksums (seal)
//! journal.rs    the journal's text, and which ends of it are dropped or refused
//! store.rs      Store: the service's writer, when it syncs and compacts
//! version.rs    the versions of the format, by their first lines
//! error.rs      StateError, with the one line that says what is wrong
//! file.rs       reading and replacing a file of the directory without following links
//! lock.rs       one service per directory
//! ```
//!
//! Loading, here, puts the two files together.

mod error;
mod file;
mod format;
mod job;
mod journal;
mod lock;
mod store;
mod version;

use std::path::Path;

pub use error::StateError;
pub use file::{FILE, TEMP_NAMES, temp_name};
pub use format::{MAX_BYTES, identity, seal};
pub use job::{State, check_job};
pub use journal::{JOURNAL, JOURNAL_MAGIC, TORN_MAX};
pub use lock::{LOCK_FILE, Lock};
pub use store::{COMPACT_FLOOR, MAX_JOURNAL_BYTES, SYNC_EVERY, Store, Written};
pub use version::{MAGIC, MAGIC_V1, MAGIC_V2};

use journal::Journal;

/// A state directory's files, read and put together.
struct Loaded {
    /// The snapshot with the journal's records added.
    state: State,
    /// The snapshot's size in bytes.
    snapshot_bytes: u64,
    /// The journal, if there is one and it follows the snapshot.
    journal: Option<Journal>,
}

/// The state of `dir` from the journal's bytes (read first, if there is a journal) and the
/// snapshot; `None` if there is no snapshot. The journal is applied if it follows the
/// snapshot, and ignored (stale) if it follows another; damage in either is an error.
fn read_state(dir: &Path, journal: Option<Vec<u8>>) -> Result<Option<Loaded>, StateError> {
    let journal_path = dir.join(JOURNAL);
    let journal = journal.map(|bytes| Journal::parse(&bytes, &journal_path)).transpose()?;
    let path = dir.join(FILE);
    let Some(bytes) = file::read_bounded(&path, MAX_BYTES)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|_| StateError::Corrupt {
        path: path.clone(),
        line: 0,
        reason: "not text".into(),
    })?;
    let mut state = State::parse(&text, &path)?;
    let journal = journal.filter(|j| Some(j.follows) == identity(&text));
    if let Some(j) = &journal {
        j.apply(&mut state, &journal_path)?;
    }
    Ok(Some(Loaded { state, snapshot_bytes: text.len() as u64, journal }))
}

impl State {
    /// Loads the state from `dir`: the snapshot and the journal's records; `None` if there
    /// is none yet. Only regular files of bounded size are read, never through a link. Safe
    /// while the service writes (see the module's documentation).
    pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
        if dir.as_os_str().is_empty() {
            return Err(StateError::EmptyDir);
        }
        // The journal first: the snapshot read after it is the one it follows, or newer.
        let journal = file::read_bounded(&dir.join(JOURNAL), MAX_JOURNAL_BYTES)?;
        Ok(read_state(dir, journal)?.map(|loaded| loaded.state))
    }

    /// Loads the state for these parameters from `dir`, or starts a fresh one; a state for
    /// other parameters, or a job of too many chunks, is an error.
    pub fn load_for(dir: &Path, terms: u64, chunk: u64) -> Result<State, StateError> {
        check_job(terms, chunk)?;
        match State::load(dir)? {
            None => Ok(State::new(terms, chunk)),
            Some(s) if (s.terms, s.chunk) == (terms, chunk) => Ok(s),
            Some(s) => Err(StateError::OtherParameters {
                path: dir.join(FILE),
                found: (s.terms, s.chunk),
                wanted: (terms, chunk),
            }),
        }
    }

    /// Writes the state to `dir` whole: a new snapshot, then an empty journal that follows
    /// it (see `store.rs`); the caller holds the [`Lock`].
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        if dir.as_os_str().is_empty() {
            return Err(StateError::EmptyDir);
        }
        store::compact(dir, self)
    }
}
