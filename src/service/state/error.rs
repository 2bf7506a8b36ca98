//! What can be wrong with a state directory or its file, and the one line that says so.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::version::MAGIC;
use crate::kernel;
use crate::plan::MAX_CHUNKS;

/// What can be wrong with a state directory or file.
#[derive(Debug)]
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
        /// The OS error.
        source: io::Error,
    },
    /// Writing or syncing the new file failed: the file it was to replace is as it was.
    NotReplaced {
        /// The new (temporary) file, removed again.
        path: PathBuf,
        /// What was being done: `write` or `sync`.
        op: &'static str,
        /// The OS error.
        source: io::Error,
        /// The file left as it was.
        kept: PathBuf,
    },
    /// Every temporary name for a new file is taken by something that is not pifork's file.
    NoTempName {
        /// The first temporary name.
        first: PathBuf,
        /// The last one, without its directory.
        last: String,
        /// How many names were tried.
        names: usize,
    },
    /// There is no state file: `pifork serve` has not run with this directory.
    NoState {
        /// The file.
        path: PathBuf,
    },
    /// The state file is private to the service, and the service's published status could
    /// not be read either.
    Private {
        /// The file.
        path: PathBuf,
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
            StateError::OtherParameters { path, found: (terms, chunk), wanted: (t, c) } => write!(
                f,
                "state file {} is for --terms {terms} --chunk {chunk}, not --terms {t} --chunk \
                 {c}; left untouched (use another --state-dir or the same parameters)",
                path.display()
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
            StateError::Busy { dir, pid } => write!(
                f,
                "state directory {} is in use by another pifork serve ({}); stop it or use \
                 another --state-dir",
                dir.display(),
                pid.map_or_else(|| "another process".to_string(), |p| format!("pid {p}"))
            ),
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
            StateError::Io { path, op, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())?;
                if source.kind() == io::ErrorKind::PermissionDenied {
                    // What `status` says of a private state, for the one who would write it.
                    f.write_str(
                        " (this user may not write there: run as the directory's owner — the \
                         service's own state is `sudo systemctl start pifork`'s — or give \
                         --state-dir a directory of yours)",
                    )?;
                }
                Ok(())
            }
            StateError::NotReplaced { path, op, source, kept } => {
                let (path, kept) = (path.display(), kept.display());
                write!(f, "cannot {op} {path}: {source}; {kept} is left as it was")
            }
            StateError::NoTempName { first, last, names } => write!(
                f,
                "cannot write {}: all {names} temporary names up to {last} exist and are not \
                 pifork's files",
                first.display()
            ),
            StateError::NoState { path } => write!(
                f,
                "cannot read {}: no such file: pifork serve has not run with this state directory",
                path.display()
            ),
            StateError::Private { path } => write!(
                f,
                "cannot read {}: permission denied: the state is private to the service; run \
                 `sudo pifork status`",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Io { source, .. } | StateError::NotReplaced { source, .. } => Some(source),
            StateError::Corrupt { .. }
            | StateError::OtherVersion { .. }
            | StateError::OtherKernel { .. }
            | StateError::OtherParameters { .. }
            | StateError::NotRegular { .. }
            | StateError::TooLarge { .. }
            | StateError::Busy { .. }
            | StateError::EmptyDir
            | StateError::TooManyChunks { .. }
            | StateError::Implausible { .. }
            | StateError::NoTempName { .. }
            | StateError::NoState { .. }
            | StateError::Private { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_os_error_is_kept_as_the_source_and_said_as_before() {
        let enospc = || io::Error::from_raw_os_error(libc::ENOSPC);
        let e = StateError::NotReplaced {
            path: "d/state.tmp.0".into(),
            op: "sync",
            source: enospc(),
            kept: "d/state".into(),
        };
        assert_eq!(
            e.to_string(),
            format!("cannot sync d/state.tmp.0: {}; d/state is left as it was", enospc())
        );
        let source = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(source.and_then(io::Error::raw_os_error), Some(libc::ENOSPC));
        let e = StateError::Io { path: "d".into(), op: "create", source: enospc() };
        assert_eq!(e.to_string(), format!("cannot create d: {}", enospc()));
        assert!(e.source().is_some_and(|s| s.is::<io::Error>()));
    }

    #[test]
    fn a_directory_this_user_may_not_write_says_what_to_do() {
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        let e = StateError::Io { path: "d/lock".into(), op: "create", source: denied };
        let text = e.to_string();
        assert!(text.starts_with("cannot create d/lock: Permission denied"), "{text}");
        assert!(text.ends_with("or give --state-dir a directory of yours)"), "{text}");
    }

    #[test]
    fn what_is_not_an_os_error_has_no_source() {
        let cases = [
            (
                StateError::NoTempName {
                    first: "d/state.tmp.0".into(),
                    last: "state.tmp.7".into(),
                    names: 8,
                },
                "cannot write d/state.tmp.0: all 8 temporary names up to state.tmp.7 exist and \
                 are not pifork's files",
            ),
            (
                StateError::NoState { path: "d/state".into() },
                "cannot read d/state: no such file: pifork serve has not run with this state \
                 directory",
            ),
            (
                StateError::Private { path: "d/state".into() },
                "cannot read d/state: permission denied: the state is private to the service; \
                 run `sudo pifork status`",
            ),
            (StateError::EmptyDir, "the state directory must not be an empty path"),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
            assert!(e.source().is_none(), "{e:?}");
        }
    }
}
