//! `pifork status`: the service's progress, read from its state (also while it runs), or, when
//! the state is private to the service, what systemd publishes to everyone: the STATUS= line
//! of pifork.service.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::state::{FILE, State, StateError};
use crate::error::Result;
use crate::logging;

/// What `pifork status` can show.
#[derive(Debug)]
pub enum Status {
    /// The state, read from its file.
    State(State),
    /// The state is not readable here: systemd's status line of pifork.service.
    Published(String),
}

/// The status of the service whose state is in `dir`. Without the permission to read the
/// state it says so on stderr and falls back to [`Status::Published`]; that too missing, it
/// fails saying to use `sudo`.
pub fn read(dir: &Path) -> Result<Status> {
    let path = dir.join(FILE);
    // Non-blocking and without following a link: a FIFO planted there must not hang this
    // check (the load below refuses it with one line).
    let probe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&path);
    if let Err(e) = probe
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        return published(&path).map(Status::Published);
    }
    let Some(state) = State::load(dir)? else {
        return Err(StateError::NoState { path }.into());
    };
    Ok(Status::State(state))
}

/// The STATUS= line systemd publishes for pifork.service, after a note that the state at
/// `path` could not be read.
fn published(path: &Path) -> Result<String> {
    let Some(text) = systemd_status_text() else {
        return Err(StateError::Private { path: path.to_path_buf() }.into());
    };
    logging::note(&format!(
        "cannot read {}: permission denied (the state is private to the service; `sudo pifork \
         status` shows it); systemd's status line of pifork.service follows",
        path.display()
    ));
    Ok(text)
}

/// `systemctl show --property=StatusText pifork.service`, when systemctl answers with a line.
fn systemd_status_text() -> Option<String> {
    std::process::Command::new("systemctl")
        .args(["show", "--property=StatusText", "--value", "pifork.service"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|text| !text.is_empty())
}

/// [`Status::Published`]'s text as `pifork status` prints it: one line.
pub fn published_text(text: &str) -> String {
    format!("pifork.service: {text}\n")
}

/// [`Status::Published`]'s text as `pifork status --json` prints it: one JSON object.
pub fn published_json(text: &str) -> String {
    format!("{{\"service_status\":{}}}", crate::report::json_string(text))
}
