//! One service per state directory: an exclusive lock on `DIR/lock`, held while `serve` runs,
//! with the holder's pid written in the file so that a second one can name it. The lock is a
//! POSIX record lock (`fcntl(F_SETLK)`), which belongs to the process alone: the workers it
//! forks do not share it (as they would an `flock`, through their copy of the descriptor), so
//! it is released the moment the service ends, even by SIGKILL, while its workers may still be
//! on their way out.
//! `status` takes no lock: the snapshot is only ever replaced whole and the journal only
//! grows by records between its replacements, so they read safely (see `mod.rs`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::FcntlArg;

use super::error::StateError;
use super::file::{self, FILE, open_regular};
use super::journal::JOURNAL;

/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// The exclusive hold on a state directory; released when dropped or when the process ends.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock of `dir` without waiting, then removes the temporary files an
    /// interrupted write left there. Another holder is [`StateError::Busy`], naming its pid.
    pub fn acquire(dir: &Path) -> Result<Lock, StateError> {
        if dir.as_os_str().is_empty() {
            return Err(StateError::EmptyDir);
        }
        let path = dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).mode(0o644);
        let file = open_regular(&path, &mut options, "create")?.ok_or_else(|| StateError::Io {
            path: path.clone(),
            op: "create",
            source: io::Error::new(io::ErrorKind::NotFound, "it vanished while being created"),
        })?;
        // Writing the pid into a file with another name would write into that other file.
        file::check_single_link(&file, &path)?;
        let mut file = file;
        // A write lock over the whole file (from offset 0, length 0: to its end, however long).
        let whole = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        match nix::fcntl::fcntl(&file, FcntlArg::F_SETLK(&whole)) {
            Ok(_) => {}
            Err(Errno::EAGAIN | Errno::EACCES) => {
                return Err(StateError::Busy { dir: dir.to_path_buf(), pid: holder(&mut file) });
            }
            Err(errno) => return Err(StateError::Io { path, op: "lock", source: errno.into() }),
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
            .map_err(|source| StateError::Io { path: path.clone(), op: "write", source })?;
        file::remove_stale_temps(dir, FILE);
        file::remove_stale_temps(dir, JOURNAL);
        Ok(Lock { _file: file })
    }
}

/// The pid the holder wrote into the lock file, if it reads as one.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
