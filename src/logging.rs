//! Logging for the `pifork` program: env_logger, with journal priorities under systemd.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// True when stderr is the journal's stream: `$JOURNAL_STREAM` names the device and inode of
/// the stream systemd connected, and stderr is that very file, as systemd.exec(5) says to
/// check (a child whose stderr was redirected inherits the variable but not the stream).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd).metadata().is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The syslog priority the journal files a record of `level` at.
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// env_logger, with `RUST_LOG` over `default`. When stderr is the journal every line starts
/// with its syslog priority, `<3>` to `<7>`, and carries no timestamp: the journal adds its own
/// and files the line at that priority, so `journalctl -p warning` works.
pub fn init(default: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if stderr_is_journal() {
        builder
            .format(|buf, record| writeln!(buf, "<{}>{}", priority(record.level()), record.args()));
    }
    builder.init();
}

/// Writes the one line that ends a failed command, `pifork: <message>`, to stderr: at error
/// priority (`<3>`) in the journal, so `journalctl -p err` shows it. A stderr that cannot be
/// written to is ignored: the exit code still tells.
pub fn fatal(message: &str) {
    let prefix = if stderr_is_journal() { "<3>" } else { "" };
    let _ = writeln!(std::io::stderr(), "{prefix}pifork: {message}");
}

/// Writes a one-line note, `pifork: <message>`, to stderr (at warning priority in the journal).
pub fn note(message: &str) {
    let prefix = if stderr_is_journal() { "<4>" } else { "" };
    let _ = writeln!(std::io::stderr(), "{prefix}pifork: {message}");
}
