//! The self-updating progress line a terminal shows during long work: chunks done, terms per
//! second and the time left, redrawn in place on stderr and erased at the end.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::engine::{self, Observer, Progress};

/// Least time between two redraws: the eye cannot follow more, and a slow terminal would lag.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

/// The text of the line: `pi: 12/48 chunks, 3.21e9 terms/s, 1 m 4 s left`.
pub fn line_text(label: &str, p: &Progress) -> String {
    let mut line = format!("{label}: {}/{} chunks", p.chunks_done, p.chunks);
    let secs = p.elapsed.as_secs_f64();
    if p.terms_done > 0 && secs > 0.0 {
        let rate = p.terms_done as f64 / secs;
        line.push_str(&format!(", {rate:.2e} terms/s"));
        let left = p.terms.saturating_sub(p.terms_done) as f64 / rate;
        line.push_str(&format!(", {} left", duration_text(left)));
    }
    line
}

/// Seconds as `42 s`, `3 m 07 s` or `2 h 05 m`.
pub fn duration_text(secs: f64) -> String {
    let s = secs.round().max(0.0) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} m {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} m", s / 3600, s % 3600 / 60),
    }
}

/// A line on stderr redrawn in place; erased when dropped.
#[derive(Debug)]
pub struct TerminalLine {
    label: String,
    last: Option<Instant>,
    shown: bool,
}

impl TerminalLine {
    /// A line whose text starts with `label`; nothing is shown yet.
    pub fn new(label: &str) -> TerminalLine {
        TerminalLine { label: label.to_string(), last: None, shown: false }
    }

    /// Shows `text` in place of what the line showed.
    pub fn show(&mut self, text: &str) {
        // A terminal that went away is no reason to stop the work.
        let _ = write!(std::io::stderr(), "\r{text}\x1b[K");
        self.shown = true;
        self.last = Some(Instant::now());
    }

    /// Shows `p`: the first time, the last time, and at most every 200 ms between.
    pub fn update(&mut self, p: &Progress) {
        let due = self.last.is_none_or(|t| t.elapsed() >= REDRAW_EVERY);
        if due || p.chunks_done == p.chunks {
            let text = line_text(&self.label, p);
            self.show(&text);
        }
    }

    /// The line as an engine observer: it shows every run's progress until dropped.
    pub fn into_observer(mut self) -> Observer {
        Box::new(move |p| self.update(p))
    }
}

impl Drop for TerminalLine {
    /// Erases the line, so the report starts on a clean line.
    fn drop(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// Every run's progress on a [`TerminalLine`] of stderr, while it lives; dropping it erases
/// the line.
#[derive(Debug)]
pub struct Shown(());

impl Drop for Shown {
    fn drop(&mut self) {
        drop(engine::observe(None));
    }
}

/// Shows the progress of the runs on this thread on a line labelled `label` until the guard is
/// dropped: only when stderr is a terminal and not `quiet` (the output is JSON).
pub fn show(label: &str, quiet: bool) -> Option<Shown> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    engine::observe(Some(TerminalLine::new(label).into_observer()));
    Some(Shown(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_chunks_rate_and_time_left() {
        let p = Progress {
            chunks_done: 12,
            chunks: 48,
            terms_done: 1_000_000_000,
            terms: 4_000_000_000,
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(line_text("pi", &p), "pi: 12/48 chunks, 5.00e8 terms/s, 6 s left");
        let start = Progress { chunks_done: 0, terms_done: 0, elapsed: Duration::ZERO, ..p };
        assert_eq!(line_text("bench", &start), "bench: 0/48 chunks");
    }

    #[test]
    fn durations_read_as_seconds_minutes_or_hours() {
        assert_eq!(duration_text(0.4), "0 s");
        assert_eq!(duration_text(59.4), "59 s");
        assert_eq!(duration_text(187.0), "3 m 07 s");
        assert_eq!(duration_text(7500.0), "2 h 05 m");
    }
}
