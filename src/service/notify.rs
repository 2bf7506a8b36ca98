//! systemd's notification protocol, spoken directly: datagrams to `$NOTIFY_SOCKET` (a path,
//! or `@name` in the abstract namespace). No libsystemd, so the binary stays static.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager, if this process runs under one.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier named by `$NOTIFY_SOCKET`; `None` when it is unset or unusable.
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let name = name.to_str()?;
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name).ok()?,
            None => SocketAddr::from_pathname(name).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, addr })
    }

    /// Sends one state line (`READY=1`, `STATUS=...`, `WATCHDOG=1`, `STOPPING=1`). Failures are
    /// logged, not fatal: the work matters more than the report.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            log::debug!("sd_notify {state:?} failed: {e}");
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if the watchdog is meant for this
/// process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
