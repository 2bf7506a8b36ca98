//! The service's durable state: which chunks of the series are finished and their partial
//! sums, kept in one text file that is replaced atomically (a new temporary file, fsync,
//! rename, fsync of the directory) after every finished chunk, by the one service that holds
//! the directory's [`Lock`].
//!
//! ```text
//! pifork-state v3
//! kernel 2 a778f548
//! terms 1000000000 917b307f
//! chunk 10000000 4674e1a6
//! elapsed 0.062 a16782b0
//! done 0 3fe921fb46d833cc 404c9e45
//! done 1 3e4ad7f29abcaf30 241b29b8
//! ...                                   (a line per finished chunk)
//! result 400921fb53c8d4f1 ........      (once every chunk is done)
//! end 100 ........
//! ```
//!
//! Every line after the first ends with a CRC-32C of the file up to it ([`seal`]), every
//! partial sum must be the series' own, and a file written by another version of the format
//! or of the kernel is refused rather than mixed; only a regular file of at most
//! [`MAX_BYTES`] is read, never through a link: a FIFO, a device, a directory or a symbolic
//! link in its place is refused at once. A refused file is never written to.
//!
//! ```text
//! job.rs        State: the job, its finished chunks and their sums; check_job
//! format.rs     the file's text: State::to_text and State::parse, checksums (seal)
//! version.rs    the versions of the format, by their first lines
//! error.rs      StateError, with the one line that says what is wrong
//! file.rs       reading and replacing a file of the directory without following links
//! lock.rs       one service per directory
//! ```
//!
//! Loading and saving, here, put these together.

mod error;
mod file;
mod format;
mod job;
mod lock;
mod version;

use std::path::Path;

pub use error::StateError;
pub use file::{FILE, TEMP_NAMES, temp_name};
pub use format::{MAX_BYTES, seal};
pub use job::{State, check_job};
pub use lock::{LOCK_FILE, Lock};
pub use version::{MAGIC, MAGIC_V1, MAGIC_V2};

impl State {
    /// Loads the state from `dir`; `None` if there is none yet. Only a regular file of at
    /// most [`MAX_BYTES`] is read, never through a link.
    pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
        if dir.as_os_str().is_empty() {
            return Err(StateError::EmptyDir);
        }
        let path = dir.join(FILE);
        let Some(bytes) = file::read_bounded(&path, MAX_BYTES)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| StateError::Corrupt {
            path: path.clone(),
            line: 0,
            reason: "not text".into(),
        })?;
        State::parse(&text, &path).map(Some)
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

    /// Writes the state to `dir` atomically (see `file.rs`); the caller holds the [`Lock`].
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        if dir.as_os_str().is_empty() {
            return Err(StateError::EmptyDir);
        }
        file::replace(dir, FILE, self.to_text().as_bytes())
    }
}
