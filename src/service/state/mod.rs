//! The service's durable state: which chunks of the series are finished and their partial
//! sums, kept in one text file that is replaced atomically (a new temporary file, fsync,
//! rename, fsync of the directory; see `file.rs`) after every finished chunk, by the one
//! service that holds the directory's [`Lock`].
//!
//! ```text
//! pifork-state v3
//! kernel 2 a778f548
//! terms 1000000000 917b307f
//! chunk 10000000 4674e1a6
//! elapsed 0.062 a16782b0
//! done 0 3fe921fb46d833cc 404c9e45
//! done 1 3e4ad7f29abcaf30 241b29b8
//! ...                                   (a line per finished chunk)
//! result 400921fb53c8d4f1 ........      (once every chunk is done)
//! end 100 ........
//! ```
//!
//! Partial sums are stored as the hex bits of the `f64`, so a resumed run combines exactly
//! the values an uninterrupted one would. Every line after the first ends with a CRC-32C
//! (Castagnoli): that of the file's bytes from its start up to and including the space before
//! it, so each checksum covers every line before it too and any single changed bit is found
//! (CRC-32C detects every error burst of up to 32 bits). Every partial sum must moreover be
//! the series' own: within [`SUM_TOLERANCE`] of [`expected_sum`] for its chunk's terms, so a
//! changed sum is refused even with a recomputed checksum, and so are NaN, infinite or zero
//! sums. The `end` line counts the `done` lines: a file cut short is caught. The `kernel` line
//! is the kernel's arithmetic version ([`kernel::VERSION`]): another version's chunk sums may
//! differ in the last bit, so a file from another kernel is refused rather than mixed.
//!
//! Older files: a `v2` file (the same lines without checksums, kernel 2) is read, its sums
//! checked against the series, and the service rewrites it as `v3` with its first save; a
//! `v1` file (kernel 1) is refused with the way to start over; any other first line is
//! refused. A refused file is never written to.
//!
//! Only a regular file of at most [`MAX_BYTES`] is read, never through a link; a FIFO, a
//! device, a directory or a symbolic link in its place is refused at once.

mod file;
mod lock;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use crc::{CRC_32_ISCSI, Crc};

use crate::kernel;
use crate::pi::MAX_TERMS;
use crate::plan::{MAX_CHUNKS, SUM_TOLERANCE, combine, expected_sum, plausible_sum};
pub use file::{TEMP_NAMES, temp_name};
pub use lock::{LOCK_FILE, Lock};

/// The first line of a state file of this version.
pub const MAGIC: &str = "pifork-state v3";

/// The first line of the format before lines carried checksums (read, and rewritten as v3).
pub const MAGIC_V2: &str = "pifork-state v2";

/// The first line of the format before the kernel version was recorded (kernel 1).
pub const MAGIC_V1: &str = "pifork-state v1";

/// The state file's name inside the state directory.
pub const FILE: &str = "state";

/// The largest state file read: the header and trailer, and a `done` line (at most 38
/// bytes) for each of [`MAX_CHUNKS`] chunks.
pub const MAX_BYTES: u64 = 4096 + 40 * MAX_CHUNKS;

/// CRC-32C, the checksum of every line.
const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

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

/// Refuses a job of more than [`MAX_CHUNKS`] chunks (or an empty chunk), before anything is
/// allocated for it.
pub fn check_job(terms: u64, chunk: u64) -> Result<(), StateError> {
    if chunk == 0 || terms.div_ceil(chunk) > MAX_CHUNKS {
        return Err(StateError::TooManyChunks { terms, chunk });
    }
    Ok(())
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

/// The lines of a state file after its first, each with its number, checksums checked and
/// stripped (a v3 file) or as they are (a v2 file).
fn checked_lines<'a>(text: &'a str, path: &Path) -> Result<Vec<(usize, &'a str)>, StateError> {
    let corrupt = |line: usize, reason: &str| StateError::Corrupt {
        path: path.to_path_buf(),
        line,
        reason: reason.to_string(),
    };
    let mut lines = text.split_inclusive('\n').enumerate().map(|(i, l)| (i + 1, l));
    let summed = match lines.next() {
        Some((_, "pifork-state v3\n")) => true,
        Some((_, "pifork-state v2\n")) => false,
        Some((_, "pifork-state v1\n")) => {
            // A v1 file's next line is its terms: anything else is damage, not a version.
            return match lines.next() {
                Some((_, l)) if l.starts_with("terms ") && l.split(' ').count() == 2 => {
                    Err(StateError::OtherKernel { path: path.to_path_buf(), found: 1 })
                }
                _ => Err(corrupt(2, "not a v1 file's terms line")),
            };
        }
        Some((_, other)) if other.starts_with("pifork-state ") => {
            return Err(StateError::OtherVersion {
                path: path.to_path_buf(),
                found: other.trim_end().to_string(),
            });
        }
        Some((n, _)) => return Err(corrupt(n, "no pifork-state header")),
        None => return Err(corrupt(1, "empty file")),
    };
    let mut digest = CRC32C.digest();
    digest.update(text.split_inclusive('\n').next().unwrap_or_default().as_bytes());
    let mut out = Vec::new();
    for (n, line) in lines {
        let Some(content) = line.strip_suffix('\n') else {
            return Err(corrupt(n, "cut short: no end of line"));
        };
        let content = if summed {
            let (content, sum) =
                content.rsplit_once(' ').ok_or_else(|| corrupt(n, "no checksum"))?;
            let mut here = digest.clone();
            here.update(content.as_bytes());
            here.update(b" ");
            if sum != format!("{:08x}", here.finalize()) {
                return Err(corrupt(
                    n,
                    "checksum mismatch: the file was changed after it was written",
                ));
            }
            content
        } else {
            content
        };
        digest.update(line.as_bytes());
        out.push((n, content));
    }
    Ok(out)
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

    /// Records chunk `index`'s partial sum, if it is the series' own (see [`plausible_sum`]).
    pub fn record(&mut self, index: u64, sum: f64) -> Result<(), StateError> {
        let (first, last) = self.bounds(index);
        if index >= self.chunks() || !plausible_sum(first, last, sum) {
            let expected = if index < self.chunks() { expected_sum(first, last) } else { f64::NAN };
            return Err(StateError::Implausible { chunk: index, sum, expected });
        }
        self.done.insert(index, sum);
        Ok(())
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut body = format!(
            "{MAGIC}\nkernel {}\nterms {}\nchunk {}\nelapsed {:.3}\n",
            kernel::VERSION,
            self.terms,
            self.chunk,
            self.elapsed
        );
        for (i, sum) in &self.done {
            let _ = writeln!(body, "done {i} {:016x}", sum.to_bits());
        }
        if self.complete() {
            let _ = writeln!(body, "result {:016x}", self.estimate().unwrap_or(0.0).to_bits());
        }
        let _ = writeln!(body, "end {}", self.done.len());
        seal(&body)
    }

    /// Parses a file's text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<State, StateError> {
        let corrupt = |line: usize, reason: &str| StateError::Corrupt {
            path: path.to_path_buf(),
            line,
            reason: reason.to_string(),
        };
        let mut lines = checked_lines(text, path)?.into_iter();
        let mut field = |name: &str| -> Result<(usize, String), StateError> {
            match lines.next() {
                Some((n, l)) => match l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')) {
                    Some(v) => Ok((n, v.to_string())),
                    None => Err(corrupt(n, &format!("expected '{name} ...'"))),
                },
                None => Err(corrupt(0, &format!("cut short before '{name}'"))),
            }
        };
        let number = |(n, v): (usize, String)| {
            v.parse::<u64>()
                .ok()
                .filter(|x| x.to_string() == v)
                .ok_or_else(|| corrupt(n, "bad number"))
        };
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
        if check_job(terms, chunk).is_err() {
            return Err(corrupt(4, &format!("more than {MAX_CHUNKS} chunks")));
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
                    let i = number((n, i.to_string()))
                        .ok()
                        .filter(|&i| i < state.chunks())
                        .ok_or_else(|| corrupt(n, "bad chunk index"))?;
                    let sum = parse_bits(bits).ok_or_else(|| corrupt(n, "bad partial sum"))?;
                    if state.done.contains_key(&i) {
                        return Err(corrupt(n, "chunk listed twice"));
                    }
                    if let Err(StateError::Implausible { expected, .. }) = state.record(i, sum) {
                        return Err(corrupt(
                            n,
                            &format!(
                                "the partial sum {sum:e} of chunk {i} is not the series' \
                                 ({expected:e}, to {SUM_TOLERANCE:e})"
                            ),
                        ));
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

    /// Loads the state from `dir`; `None` if there is none yet. Only a regular file of at
    /// most [`MAX_BYTES`] is read, never through a link.
    pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
        if dir.as_os_str().is_empty() {
            return Err(StateError::EmptyDir);
        }
        let path = dir.join(FILE);
        let Some(bytes) = file::read_bounded(&path, MAX_BYTES)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| StateError::Corrupt {
            path: path.clone(),
            line: 0,
            reason: "not text".into(),
        })?;
        State::parse(&text, &path).map(Some)
    }

    /// Loads the state for these parameters from `dir`, or starts a fresh one; a state for
    /// other parameters, or a job of too many chunks, is an error.
    pub fn load_for(dir: &Path, terms: u64, chunk: u64) -> Result<State, StateError> {
        check_job(terms, chunk)?;
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

    /// Writes the state to `dir` atomically (see [`file`]); the caller holds the [`Lock`].
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        if dir.as_os_str().is_empty() {
            return Err(StateError::EmptyDir);
        }
        file::replace(dir, FILE, self.to_text().as_bytes())
    }
}

/// Appends to every line of `text` after the first its checksum: the CRC-32C of the bytes
/// from the start of the result up to and including the space before it.
pub fn seal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 3);
    let mut digest = CRC32C.digest();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let start = out.len();
        if i == 0 {
            out.push_str(line);
        } else {
            let content = line.strip_suffix('\n').unwrap_or(line);
            out.push_str(content);
            out.push(' ');
            digest.update(&out.as_bytes()[start..]);
            let _ = writeln!(out, "{:08x}", digest.clone().finalize());
            digest.update(&out.as_bytes()[start + content.len() + 1..]);
            continue;
        }
        digest.update(&out.as_bytes()[start..]);
    }
    out
}

/// The bits of an `f64` as exactly 16 lowercase hex digits.
fn parse_bits(text: &str) -> Option<f64> {
    let bits = u64::from_str_radix(text, 16).ok()?;
    (format!("{bits:016x}") == text).then(|| f64::from_bits(bits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pi;

    fn sample() -> State {
        let mut s = State::new(10, 4);
        s.elapsed = 1.5;
        s.done.insert(0, pi::partial_sum(1, 4));
        s.done.insert(2, pi::partial_sum(9, 10));
        s
    }

    /// A text's lines without their checksums (the v2 form of a v3 text).
    fn unsealed(text: &str) -> String {
        let mut lines = text.lines();
        let mut out = format!("{}\n", lines.next().unwrap());
        for l in lines {
            out.push_str(l.rsplit_once(' ').unwrap().0);
            out.push('\n');
        }
        out
    }

    fn corrupt_reason(text: &str) -> String {
        match State::parse(text, Path::new("f")) {
            Err(StateError::Corrupt { reason, .. }) => reason,
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn round_trips_bit_for_bit() {
        let s = sample();
        assert_eq!(State::parse(&s.to_text(), Path::new("x")).unwrap(), s);
        let mut full = s.clone();
        full.done.insert(1, pi::partial_sum(5, 8));
        assert!(full.complete() && full.to_text().contains("\nresult "));
        assert_eq!(State::parse(&full.to_text(), Path::new("x")).unwrap(), full);
        assert_eq!(seal(&unsealed(&full.to_text())), full.to_text());
    }

    #[test]
    fn each_checksum_covers_every_byte_before_it() {
        let text = sample().to_text();
        // CRC-32C's check value, and the second line's checksum is that of the bytes before it.
        assert_eq!(CRC32C.checksum(b"123456789"), 0xe306_9283);
        let second = text.split_inclusive('\n').take(2).collect::<String>();
        let (covered, sum) = second.trim_end().rsplit_once(' ').unwrap();
        assert_eq!(format!("{:08x}", CRC32C.checksum(format!("{covered} ").as_bytes())), sum);
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
    fn every_single_bit_flip_is_refused() {
        let mut full = sample();
        full.done.insert(1, pi::partial_sum(5, 8));
        for state in [sample(), full] {
            let text = state.to_text().into_bytes();
            for byte in 0..text.len() {
                for bit in 0..8 {
                    let mut bad = text.clone();
                    bad[byte] ^= 1 << bit;
                    let parsed = String::from_utf8(bad).map(|t| State::parse(&t, Path::new("f")));
                    assert!(!matches!(parsed, Ok(Ok(_))), "byte {byte} bit {bit} accepted");
                }
            }
        }
    }

    #[test]
    fn damage_with_valid_checksums_is_refused() {
        let good = unsealed(&sample().to_text());
        let sum0 = format!("{:016x}", pi::partial_sum(1, 4).to_bits());
        let cases = [
            (good.replace("end 2", "end 3"), "chunk count"),
            (good.replace("\nend 2\n", "\n"), "cut short"),
            (good.replace("done 2 ", "done 9 "), "bad chunk index"),
            (good.replace("terms 10", "terms ten"), "bad number"),
            (good.replace("terms 10", "terms 010"), "bad number"),
            (good.replace("chunk 4", "chunk 0"), "positive"),
            (good.replace("terms 10\nchunk 4", "terms 10000000\nchunk 1"), "chunks"),
            (format!("{good}junk\n"), "after 'end'"),
            ("hello\n".into(), "header"),
            (String::new(), "empty"),
        ];
        for (text, why) in cases {
            let reason = corrupt_reason(&seal(&text));
            assert!(reason.contains(why), "{reason} / {why}");
        }
        assert!(corrupt_reason(&sample().to_text()[..40]).contains("cut short"));
        // Sums that are not the series': NaN, infinities, zeros, a changed bit, another
        // chunk's sum, upper-case hex.
        let bits = |x: f64| format!("{:016x}", x.to_bits());
        let flipped = f64::from_bits(pi::partial_sum(1, 4).to_bits() ^ (1 << 40));
        for bad in [
            bits(f64::NAN),
            bits(f64::INFINITY),
            bits(f64::NEG_INFINITY),
            bits(0.0),
            bits(-0.0),
            bits(flipped),
            bits(pi::partial_sum(9, 10)),
            bits(-pi::partial_sum(1, 4)),
        ] {
            let reason = corrupt_reason(&seal(&good.replace(&sum0, &bad)));
            assert!(reason.contains("is not the series'"), "{bad}: {reason}");
        }
        let upper = corrupt_reason(&seal(&good.replace(&sum0, &sum0.to_uppercase())));
        assert!(upper.contains("bad partial sum"), "{upper}");
        // The same in a file's only sums: the result line must match them too.
        let mut full = sample();
        full.done.insert(1, pi::partial_sum(5, 8));
        let text = unsealed(&full.to_text());
        let result = text.lines().find_map(|l| l.strip_prefix("result ")).unwrap().to_string();
        let reason = corrupt_reason(&seal(&text.replace(&result, &bits(3.0))));
        assert!(reason.contains("result does not match"), "{reason}");
        assert!(matches!(
            State::parse("pifork-state v0\n", Path::new("f")),
            Err(StateError::OtherVersion { .. })
        ));
    }

    #[test]
    fn record_takes_only_the_series_sums() {
        let mut s = State::new(10, 4);
        assert_eq!(s.record(1, pi::partial_sum(5, 8)), Ok(()));
        for (chunk, sum) in [(0, f64::NAN), (0, 0.0), (0, pi::partial_sum(5, 8)), (3, 1.0)] {
            assert!(matches!(s.record(chunk, sum), Err(StateError::Implausible { .. })));
        }
        assert_eq!(s.done.len(), 1);
        let text = StateError::Implausible { chunk: 0, sum: 0.0, expected: 0.72 }.to_string();
        assert!(text.contains("not the series'") && text.contains("not recorded"), "{text}");
    }

    #[test]
    fn a_v2_file_is_read_with_its_sums_checked() {
        let v3 = sample().to_text();
        let v2 = unsealed(&v3).replace(MAGIC, MAGIC_V2);
        assert_eq!(State::parse(&v2, Path::new("f")).unwrap(), sample());
        let sum0 = format!("{:016x}", pi::partial_sum(1, 4).to_bits());
        let bad = v2.replace(&sum0, &format!("{:016x}", 0.0f64.to_bits()));
        assert!(corrupt_reason(&bad).contains("is not the series'"));
        // A v2 file with checksums is neither.
        assert!(corrupt_reason(&v3.replace(MAGIC, MAGIC_V2)).contains("bad number"));
    }

    #[test]
    fn another_kernel_is_refused_with_a_way_out() {
        let v1 = "pifork-state v1\nterms 10\nchunk 4\nelapsed 0\nend 0\n";
        let old = State::parse(v1, Path::new("f")).unwrap_err();
        assert_eq!(old, StateError::OtherKernel { path: "f".into(), found: 1 });
        let text = old.to_string();
        assert!(text.contains("kernel version 1") && text.contains("restart the job"), "{text}");
        let v3 = seal(&unsealed(&sample().to_text()).replace("\nkernel 2\n", "\nkernel 3\n"));
        assert!(matches!(
            State::parse(&v3, Path::new("f")),
            Err(StateError::OtherKernel { found: 3, .. })
        ));
        // A damaged v3 header that reads "v1" is damage, not kernel 1.
        let damaged = sample().to_text().replace(MAGIC, MAGIC_V1);
        assert!(corrupt_reason(&damaged).contains("not a v1 file"));
    }

    #[test]
    fn too_many_chunks_are_refused_with_a_chunk_that_fits() {
        assert_eq!(check_job(1_000_000, 1), Ok(()));
        let e = check_job(1_000_000_000_000, 1).unwrap_err();
        assert_eq!(e, StateError::TooManyChunks { terms: 1_000_000_000_000, chunk: 1 });
        assert!(e.to_string().contains("use --chunk 1000000 or more"), "{e}");
        assert!(check_job(MAX_TERMS, 1 << 30).is_err() && check_job(MAX_TERMS, 1 << 31).is_ok());
        assert!(check_job(5, 0).is_err());
    }
}
