//! The service's durable state: which chunks of the series are finished and their partial
//! sums, kept in one text file that is replaced atomically (temp file, fsync, rename, fsync
//! of the directory) after every finished chunk.
//!
//! ```text
//! pifork-state v2
//! kernel 2
//! terms 1000000000000
//! chunk 4000000000
//! elapsed 12.5
//! done 0 3fe921fb54442d18
//! done 3 3e7ad7f29abcaf48
//! result 400921fb54442d18        (once every chunk is done)
//! end 2
//! ```
//!
//! Partial sums are stored as the hex bits of the `f64`, so a resumed run combines exactly
//! the values an uninterrupted one would. The `end` line counts the `done` lines: a file cut
//! short is caught. The `kernel` line is the kernel's arithmetic version
//! ([`kernel::VERSION`]): another version's chunk sums may differ in the last bit, so a file
//! from another kernel (every `v1` file is one) is refused rather than mixed with new chunks.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::app::kernel;
use crate::app::pi::MAX_TERMS;
use crate::app::plan::combine;

/// The first line of a state file of this version.
pub const MAGIC: &str = "pifork-state v2";

/// The first line of the format before the kernel version was recorded (kernel 1).
pub const MAGIC_V1: &str = "pifork-state v1";

/// The state file's name inside the state directory.
pub const FILE: &str = "state";

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
            StateError::Io { path, op, reason } => {
                write!(f, "cannot {op} {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for StateError {}

fn io_error<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |e| StateError::Io { path: path.to_path_buf(), op, reason: e.to_string() }
}

/// Progress of one long computation.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// N.
    pub terms: u64,
    /// Terms per chunk.
    pub chunk: u64,
    /// Seconds spent computing, over all runs.
    pub elapsed: f64,
    /// Finished chunks: index -> partial sum.
    pub done: BTreeMap<u64, f64>,
}

impl State {
    /// A fresh state for N terms in chunks of `chunk`.
    pub fn new(terms: u64, chunk: u64) -> State {
        State { terms, chunk, elapsed: 0.0, done: BTreeMap::new() }
    }

    /// Number of chunks.
    pub fn chunks(&self) -> u64 {
        self.terms.div_ceil(self.chunk)
    }

    /// Terms `(first, last)` of chunk `index`.
    pub fn bounds(&self, index: u64) -> (u64, u64) {
        let first = index * self.chunk + 1;
        (first, self.terms.min(first + self.chunk - 1))
    }

    /// Terms in finished chunks.
    pub fn terms_done(&self) -> u64 {
        self.done
            .keys()
            .map(|&i| {
                let (a, b) = self.bounds(i);
                b - a + 1
            })
            .sum()
    }

    /// True once every chunk is finished.
    pub fn complete(&self) -> bool {
        self.done.len() as u64 == self.chunks()
    }

    /// 4 * the sum of the finished chunks that form an unbroken run from the first: the
    /// estimate so far (None before chunk 0 is done). Once complete, the final result, the same
    /// bits however the work was interrupted and resumed.
    pub fn estimate(&self) -> Option<f64> {
        let prefix: Vec<f64> = (0..).map_while(|i| self.done.get(&i).copied()).collect();
        (!prefix.is_empty()).then(|| 4.0 * combine(&prefix))
    }

    /// Terms covered by [`State::estimate`].
    pub fn prefix_terms(&self) -> u64 {
        let k = (0..).take_while(|i| self.done.contains_key(i)).count() as u64;
        if k == 0 { 0 } else { self.bounds(k - 1).1 }
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{MAGIC}\nkernel {}\nterms {}\nchunk {}\nelapsed {:.3}\n",
            kernel::VERSION,
            self.terms,
            self.chunk,
            self.elapsed
        );
        for (i, sum) in &self.done {
            let _ = writeln!(out, "done {i} {:016x}", sum.to_bits());
        }
        if self.complete() {
            let _ = writeln!(out, "result {:016x}", self.estimate().unwrap_or(0.0).to_bits());
        }
        let _ = writeln!(out, "end {}", self.done.len());
        out
    }

    /// Parses a file's text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<State, StateError> {
        let corrupt = |line: usize, reason: &str| StateError::Corrupt {
            path: path.to_path_buf(),
            line,
            reason: reason.to_string(),
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, MAGIC)) => {}
            Some((_, MAGIC_V1)) => {
                return Err(StateError::OtherKernel { path: path.to_path_buf(), found: 1 });
            }
            Some((_, other)) if other.starts_with("pifork-state ") => {
                return Err(StateError::OtherVersion {
                    path: path.to_path_buf(),
                    found: other.to_string(),
                });
            }
            Some((n, _)) => return Err(corrupt(n, "no pifork-state header")),
            None => return Err(corrupt(1, "empty file")),
        }
        let mut field = |name: &str| -> Result<(usize, String), StateError> {
            match lines.next() {
                Some((n, l)) => match l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')) {
                    Some(v) => Ok((n, v.to_string())),
                    None => Err(corrupt(n, &format!("expected '{name} ...'"))),
                },
                None => Err(corrupt(0, &format!("cut short before '{name}'"))),
            }
        };
        let number =
            |(n, v): (usize, String)| v.parse::<u64>().map_err(|_| corrupt(n, "bad number"));
        let version = number(field("kernel")?)?;
        if version != u64::from(kernel::VERSION) {
            return Err(StateError::OtherKernel {
                path: path.to_path_buf(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
            });
        }
        let terms = number(field("terms")?)?;
        let chunk = number(field("chunk")?)?;
        if terms == 0 || chunk == 0 || terms > MAX_TERMS {
            return Err(corrupt(3, "terms and chunk must be positive"));
        }
        let (n, elapsed) = field("elapsed")?;
        let elapsed = elapsed
            .parse::<f64>()
            .ok()
            .filter(|e| e.is_finite() && *e >= 0.0)
            .ok_or_else(|| corrupt(n, "bad elapsed time"))?;
        let mut state = State { terms, chunk, elapsed, done: BTreeMap::new() };
        let mut result = None;
        for (n, line) in lines.by_ref() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("done"), Some(i), Some(bits), None) => {
                    let i = i
                        .parse::<u64>()
                        .ok()
                        .filter(|&i| i < state.chunks())
                        .ok_or_else(|| corrupt(n, "bad chunk index"))?;
                    let sum = parse_bits(bits).ok_or_else(|| corrupt(n, "bad partial sum"))?;
                    if state.done.insert(i, sum).is_some() {
                        return Err(corrupt(n, "chunk listed twice"));
                    }
                }
                (Some("result"), Some(bits), None, None) => {
                    result = Some((n, parse_bits(bits).ok_or_else(|| corrupt(n, "bad result"))?));
                }
                (Some("end"), Some(count), None, None) => {
                    if count.parse::<usize>().ok() != Some(state.done.len()) {
                        return Err(corrupt(n, "chunk count does not match"));
                    }
                    if let Some((m, r)) = result
                        && (!state.complete()
                            || state.estimate().map(f64::to_bits) != Some(r.to_bits()))
                    {
                        return Err(corrupt(m, "result does not match the chunks"));
                    }
                    return match lines.next() {
                        None => Ok(state),
                        Some((m, _)) => Err(corrupt(m, "text after 'end'")),
                    };
                }
                _ => return Err(corrupt(n, "unexpected line")),
            }
        }
        Err(corrupt(0, "cut short: no 'end' line"))
    }

    /// Loads the state from `dir`; `None` if there is none yet.
    pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
        let path = dir.join(FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| StateError::Corrupt {
                    path: path.clone(),
                    line: 0,
                    reason: "not text".into(),
                })?;
                State::parse(&text, &path).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, "read")(e)),
        }
    }

    /// Loads the state for these parameters from `dir`, or starts a fresh one; a state for
    /// other parameters is an error.
    pub fn load_for(dir: &Path, terms: u64, chunk: u64) -> Result<State, StateError> {
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

    /// Writes the state to `dir` atomically: a temporary file, fsync, rename over the old
    /// one, fsync of the directory.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let tmp = dir.join(format!("{FILE}.tmp"));
        let path = dir.join(FILE);
        let mut file = File::create(&tmp).map_err(io_error(&tmp, "write"))?;
        file.write_all(self.to_text().as_bytes()).map_err(io_error(&tmp, "write"))?;
        file.sync_all().map_err(io_error(&tmp, "sync"))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io_error(&path, "replace"))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir, "sync"))?;
        Ok(())
    }
}

fn parse_bits(text: &str) -> Option<f64> {
    (text.len() == 16).then(|| u64::from_str_radix(text, 16).ok()).flatten().map(f64::from_bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::pi;

    fn sample() -> State {
        let mut s = State::new(10, 4);
        s.elapsed = 1.5;
        s.done.insert(0, pi::partial_sum(1, 4));
        s.done.insert(2, pi::partial_sum(9, 10));
        s
    }

    #[test]
    fn round_trips_bit_for_bit() {
        let s = sample();
        assert_eq!(State::parse(&s.to_text(), Path::new("x")).unwrap(), s);
        let mut full = s.clone();
        full.done.insert(1, pi::partial_sum(5, 8));
        assert!(full.complete() && full.to_text().contains("\nresult "));
        assert_eq!(State::parse(&full.to_text(), Path::new("x")).unwrap(), full);
    }

    #[test]
    fn chunks_and_estimates() {
        let s = sample();
        assert_eq!((s.chunks(), s.bounds(2), s.terms_done()), (3, (9, 10), 6));
        assert_eq!(s.prefix_terms(), 4);
        assert_eq!(s.estimate(), Some(4.0 * pi::partial_sum(1, 4)));
        assert_eq!(State::new(10, 4).estimate(), None);
    }

    #[test]
    fn rejects_damage() {
        let good = sample().to_text();
        let cases = [
            (good.replace("end 2", "end 3"), "chunk count"),
            (good.replace("\nend 2\n", "\n"), "cut short"),
            (good.replace("done 2 ", "done 9 "), "bad chunk index"),
            (good.replace("terms 10", "terms ten"), "bad number"),
            (good[..good.len() / 2].to_string(), ""),
            (format!("{good}junk\n"), "after 'end'"),
            (String::new(), "empty"),
            ("hello\n".into(), "header"),
        ];
        for (text, why) in cases {
            match State::parse(&text, Path::new("f")) {
                Err(StateError::Corrupt { reason, .. }) => {
                    assert!(reason.contains(why), "{reason} / {why}")
                }
                other => panic!("{why}: {other:?}"),
            }
        }
        assert!(matches!(
            State::parse("pifork-state v0\n", Path::new("f")),
            Err(StateError::OtherVersion { .. })
        ));
    }

    #[test]
    fn another_kernel_is_refused_with_a_way_out() {
        let v1 = "pifork-state v1\nterms 10\nchunk 4\nelapsed 0\nend 0\n";
        let old = State::parse(v1, Path::new("f")).unwrap_err();
        assert_eq!(old, StateError::OtherKernel { path: "f".into(), found: 1 });
        let text = old.to_string();
        assert!(text.contains("kernel version 1") && text.contains("restart the job"), "{text}");
        let v3 = sample().to_text().replace("\nkernel 2\n", "\nkernel 3\n");
        assert!(matches!(
            State::parse(&v3, Path::new("f")),
            Err(StateError::OtherKernel { found: 3, .. })
        ));
    }
}
