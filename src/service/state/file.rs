//! Reading and replacing files in the state directory without trusting what is there: no
//! link is followed, nothing but a regular file of bounded size is read, and a new file is
//! written under a name that did not exist (`O_CREAT|O_EXCL|O_NOFOLLOW`), synced, renamed
//! over the old one and the directory synced. The one file written in place, the journal, is
//! opened the same way and must have no other name (no hard link).

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::StateError;

/// The state file's name inside the state directory.
pub const FILE: &str = "state";

/// How many temporary names a write tries (`state.tmp.0` to `state.tmp.7`): a name that
/// exists, whatever it is, is skipped, never opened.
pub const TEMP_NAMES: usize = 8;

/// Flags for every open in the state directory: a symbolic link is an error (ELOOP), a FIFO
/// or a device does not block the open.
const NO_FOLLOW: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;

/// The temporary name number `n` for `file` in `dir`.
pub fn temp_name(dir: &Path, file: &str, n: usize) -> PathBuf {
    dir.join(format!("{file}.tmp.{n}"))
}

/// What a file that is not a regular one is, for the error.
fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The error for an open or read that failed.
fn io_error(path: &Path, op: &'static str, e: io::Error) -> StateError {
    let kind = match e.raw_os_error() {
        Some(libc::ELOOP) => "a symbolic link",
        Some(libc::EISDIR) => "a directory",
        _ => return StateError::Io { path: path.to_path_buf(), op, source: e },
    };
    StateError::NotRegular { path: path.to_path_buf(), kind }
}

/// Opens `path` with `options` plus [`NO_FOLLOW`] and checks it is a regular file; `None`
/// if it does not exist.
pub fn open_regular(
    path: &Path,
    options: &mut OpenOptions,
    op: &'static str,
) -> Result<Option<File>, StateError> {
    let file = match options.custom_flags(NO_FOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, op, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, op, e))?;
    if !meta.is_file() {
        return Err(StateError::NotRegular { path: path.to_path_buf(), kind: kind(&meta) });
    }
    Ok(Some(file))
}

/// The content of the regular file `path`, at most `limit` bytes; `None` if it does not
/// exist. A link, a FIFO, a device, a directory or a larger file is an error.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, StateError> {
    let Some(file) = open_regular(path, OpenOptions::new().read(true), "read")? else {
        return Ok(None);
    };
    read_all(&file, path, limit).map(Some)
}

/// The content of the open regular file `file` (`path`), from its start, at most `limit`
/// bytes; a larger file is an error.
pub fn read_all(file: &File, path: &Path, limit: u64) -> Result<Vec<u8>, StateError> {
    let too_large = |size| StateError::TooLarge { path: path.to_path_buf(), size, limit };
    let size = file.metadata().map_err(|e| io_error(path, "read", e))?.len();
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // The file may grow after the check: read one byte past the limit to notice.
    let mut from_start = file;
    from_start.seek(SeekFrom::Start(0)).map_err(|e| io_error(path, "read", e))?;
    from_start.take(limit + 1).read_to_end(&mut bytes).map_err(|e| io_error(path, "read", e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Refuses `file` (`path`) if it has another name besides: writing into it in place would
/// write into that other file too.
pub fn check_single_link(file: &File, path: &Path) -> Result<(), StateError> {
    let links = file.metadata().map(|m| m.nlink()).map_err(|e| io_error(path, "open", e))?;
    if links != 1 {
        return Err(StateError::NotRegular {
            path: path.to_path_buf(),
            kind: "a file with other hard links",
        });
    }
    Ok(())
}

/// Creates a new temporary file for `file` in `dir` under the first of [`TEMP_NAMES`] names
/// that does not exist; whatever exists under a name, a link included, is left alone.
fn create_temp(dir: &Path, file: &str) -> Result<(PathBuf, File), StateError> {
    for n in 0..TEMP_NAMES {
        let tmp = temp_name(dir, file, n);
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(NO_FOLLOW)
            .open(&tmp);
        match opened {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StateError::Io { path: tmp, op: "write", source: e }),
        }
    }
    Err(StateError::NoTempName {
        first: temp_name(dir, file, 0),
        last: format!("{file}.tmp.{}", TEMP_NAMES - 1),
        names: TEMP_NAMES,
    })
}

/// Replaces `dir/file` with `bytes` atomically: a new temporary file, fsync, rename over the
/// old one, fsync of the directory. On failure the temporary file is removed and the old
/// file is as it was. Returns the new file, open for writing at its end.
pub fn replace(dir: &Path, file: &str, bytes: &[u8]) -> Result<File, StateError> {
    let target = dir.join(file);
    let (tmp, mut out) = create_temp(dir, file)?;
    let written = out
        .write_all(bytes)
        .map_err(|e| (e, "write"))
        .and_then(|()| out.sync_all().map_err(|e| (e, "sync")));
    if let Err((e, op)) = written {
        drop(out);
        let _ = fs::remove_file(&tmp);
        return Err(StateError::NotReplaced { path: tmp, op, source: e, kept: target });
    }
    if let Err(e) = fs::rename(&tmp, &target) {
        drop(out);
        let _ = fs::remove_file(&tmp);
        return Err(io_error(&target, "replace", e));
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, "sync", e))?;
    Ok(out)
}

/// Removes the temporary files an interrupted write left behind (regular files under the
/// temporary names only; removing a name never touches what a link points to).
pub fn remove_stale_temps(dir: &Path, file: &str) {
    for n in 0..TEMP_NAMES {
        let tmp = temp_name(dir, file, n);
        if fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(&tmp);
        }
    }
}
