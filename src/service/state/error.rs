//! What can be wrong with a state directory or its file, and the one line that says so.

use std::fmt;
use std::path::PathBuf;

use super::version::MAGIC;
use crate::kernel;
use crate::plan::MAX_CHUNKS;

/// What can be wrong with a state directory or file.
#[derive(Debug, Clone, PartialEq)]
pub enum StateError {
    /// The file cannot be read as a state file.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Line number (1-based) where it went wrong.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// The file was written by another version of pifork.
    OtherVersion {
        /// The file.
        path: PathBuf,
        /// Its first line.
        found: String,
    },
    /// The file's chunks were summed by another version of the kernel.
    OtherKernel {
        /// The file.
        path: PathBuf,
        /// The kernel version it records.
        found: u32,
    },
    /// The file belongs to a run with other parameters.
    OtherParameters {
        /// The file.
        path: PathBuf,
        /// (terms, chunk) in the file.
        found: (u64, u64),
        /// (terms, chunk) asked for.
        wanted: (u64, u64),
    },
    /// A name in the state directory is not a regular file (a link, a FIFO, a device...).
    NotRegular {
        /// The name.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The file is larger than any state file can be.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The largest state file.
        limit: u64,
    },
    /// Another service holds the state directory.
    Busy {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// The state directory's path is empty.
    EmptyDir,
    /// The job would have more chunks than a state holds.
    TooManyChunks {
        /// N.
        terms: u64,
        /// Terms per chunk.
        chunk: u64,
    },
    /// A partial sum is not the series' sum over its chunk's terms.
    Implausible {
        /// The chunk.
        chunk: u64,
        /// The sum offered.
        sum: f64,
        /// The series' sum over the chunk.
        expected: f64,
    },
    /// Reading or writing failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error text.
        reason: String,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Corrupt { path, line, reason } => write!(
                f,
                "state file {} is corrupt at line {line}: {reason} (left untouched; move it away \
                 to start over)",
                path.display()
            ),
            StateError::OtherVersion { path, found } => write!(
                f,
                "state file {} is not a {MAGIC} file (it starts with {found:?}); left untouched",
                path.display()
            ),
            StateError::OtherKernel { path, found } => write!(
                f,
                "state file {} holds chunks summed by kernel version {found}, this pifork's \
                 kernel is version {}: their bits may differ in the last place, so they cannot \
                 be combined; left untouched (to restart the job from the beginning, move the \
                 file away or use another --state-dir)",
                path.display(),
                kernel::VERSION
            ),
            StateError::OtherParameters { path, found, wanted } => write!(
                f,
                "state file {} is for --terms {} --chunk {}, not --terms {} --chunk {}; left \
                 untouched (use another --state-dir or the same parameters)",
                path.display(),
                found.0,
                found.1,
                wanted.0,
                wanted.1
            ),
            StateError::NotRegular { path, kind } => write!(
                f,
                "{} is {kind}: refused and left untouched; a state directory holds only \
                 pifork's regular files (remove it or use another --state-dir)",
                path.display()
            ),
            StateError::TooLarge { path, size, limit } => write!(
                f,
                "{} has {size} bytes, more than a state file can have ({limit}): refused, left \
                 untouched",
                path.display()
            ),
            StateError::Busy { dir, pid } => {
                let holder =
                    pid.map_or_else(|| "another process".to_string(), |p| format!("pid {p}"));
                write!(
                    f,
                    "state directory {} is in use by another pifork serve ({holder}); stop it \
                     or use another --state-dir",
                    dir.display()
                )
            }
            StateError::EmptyDir => write!(f, "the state directory must not be an empty path"),
            StateError::TooManyChunks { terms, chunk } => write!(
                f,
                "--terms {terms} in chunks of {chunk} makes {} chunks, more than {MAX_CHUNKS}; \
                 use --chunk {} or more",
                terms.div_ceil(*chunk),
                terms.div_ceil(MAX_CHUNKS)
            ),
            StateError::Implausible { chunk, sum, expected } => write!(
                f,
                "the partial sum {sum:e} of chunk {chunk} is not the series' ({expected:e}); not \
                 recorded"
            ),
            StateError::Io { path, op, reason } => {
                write!(f, "cannot {op} {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for StateError {}
