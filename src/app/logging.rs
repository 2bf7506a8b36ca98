//! Logging for the `pifork` program: env_logger, with journal priorities under systemd.

use std::io::Write;

/// env_logger, with `RUST_LOG` over `default`. Under systemd (`JOURNAL_STREAM` set) every line
/// starts with its syslog priority, `<3>` to `<7>`, and carries no timestamp: the journal adds
/// its own and files the line at that priority, so `journalctl -p warning` works.
pub fn init(default: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.format(|buf, record| {
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}", record.args())
        });
    }
    builder.init();
}
