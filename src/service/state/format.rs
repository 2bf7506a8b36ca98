//! The state file's text: [`State::to_text`] writes it, [`State::parse`] reads it back.
//!
//! Partial sums are stored as the hex bits of the `f64`, so a resumed run combines exactly
//! the values an uninterrupted one would. Every line after the first ends with a CRC-32C
//! (Castagnoli): that of the file's bytes from its start up to and including the space before
//! it, so each checksum covers every line before it too and any single changed bit is found
//! (CRC-32C detects every error burst of up to 32 bits). Every partial sum must moreover be
//! the series' own: within [`SUM_TOLERANCE`] of [`crate::plan::expected_sum`] for its chunk's
//! terms, so a changed sum is refused even with a recomputed checksum, and so are NaN,
//! infinite or zero sums. The `end` line counts the `done` lines: a file cut short is caught.
//! A line that ends with a carriage return or a space (a file given Windows line ends, or
//! edited) is refused with the character named, the first line too.
//! The `kernel` line is the kernel's arithmetic version ([`kernel::VERSION`]): another
//! version's chunk sums may differ in the last bit, so a file from another kernel is refused
//! rather than mixed.
//!
//! Older files: a `v2` file (the same lines without checksums, kernel 2) is read, its sums
//! checked against the series, and the service rewrites it as `v3` with its first save; a
//! `v1` file (kernel 1) is refused with the way to start over; any other first line is
//! refused (see `version.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crc::{CRC_32_ISCSI, Crc};

use super::error::StateError;
use super::job::{State, check_job};
use super::version::{MAGIC, MAGIC_V1, MAGIC_V2, Version};
use crate::kernel;
use crate::pi::MAX_TERMS;
use crate::plan::{MAX_CHUNKS, SUM_TOLERANCE};

/// The largest state file read: the header and trailer, and a `done` line (at most 38
/// bytes) for each of [`MAX_CHUNKS`] chunks.
pub const MAX_BYTES: u64 = 4096 + 40 * MAX_CHUNKS;

/// CRC-32C, the checksum of every line (of the state file and of the journal).
pub(super) static CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

impl State {
    /// The file's text.
    pub fn to_text(&self) -> String {
        self.to_sealed().0
    }

    /// The file's text and its identity, the checksum that ends it (see [`identity`]).
    pub(super) fn to_sealed(&self) -> (String, u32) {
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
        sealed(&body)
    }

    /// Parses a file's text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<State, StateError> {
        let mut reader = Reader { path, lines: checked_lines(text, path)?.into_iter() };
        let mut state = reader.header()?;
        reader.chunks(&mut state)?;
        Ok(state)
    }
}

/// The identity of a v3 file's `text`: the checksum that ends its last line, which covers
/// every byte before it. A journal names the identity of the snapshot it follows; `None` for
/// a text that is not v3 (a v2 file has no checksums).
pub fn identity(text: &str) -> Option<u32> {
    if !text.starts_with(MAGIC) || !text[MAGIC.len()..].starts_with('\n') {
        return None;
    }
    let (_, sum) = text.strip_suffix('\n')?.rsplit_once(' ')?;
    u32::from_str_radix(sum, 16).ok().filter(|_| sum.len() == 8)
}

/// Appends to every line of `text` after the first its checksum: the CRC-32C of the bytes
/// from the start of the result up to and including the space before it.
pub fn seal(text: &str) -> String {
    sealed(text).0
}

/// [`seal`], and the last checksum it wrote (0 for a text of one line).
fn sealed(text: &str) -> (String, u32) {
    let mut out = String::with_capacity(text.len() + text.len() / 3);
    let mut digest = CRC32C.digest();
    let mut last = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let start = out.len();
        if i == 0 {
            out.push_str(line);
        } else {
            let content = line.strip_suffix('\n').unwrap_or(line);
            out.push_str(content);
            out.push(' ');
            digest.update(&out.as_bytes()[start..]);
            last = digest.clone().finalize();
            let _ = writeln!(out, "{last:08x}");
            digest.update(&out.as_bytes()[start + content.len() + 1..]);
            continue;
        }
        digest.update(&out.as_bytes()[start..]);
    }
    (out, last)
}

/// What ends `line` (without its end of line) that no line of pifork's ends with: a carriage
/// return (a file given Windows line ends) or a space, named for the error.
pub(super) fn stray_end(line: &str) -> Option<&'static str> {
    if line.ends_with('\r') {
        Some("a carriage return (CR, \\r: Windows line ends?)")
    } else if line.ends_with(' ') {
        Some("a trailing space")
    } else if line.ends_with('\t') {
        Some("a trailing tab")
    } else {
        None
    }
}

/// The reason a first line that is `magic` but for what ends it is refused: it names the
/// character; `None` if `first` (without its end of line) is not such a line.
pub(super) fn stray_header(first: &str, magics: &[&str]) -> Option<String> {
    let what = stray_end(first)?;
    let bare = first.trim_end_matches(['\r', ' ', '\t']);
    magics.contains(&bare).then(|| format!("the header {bare:?} ends with {what}"))
}

/// The reason a partial sum is refused: it is not the series' own.
pub(super) fn implausible(chunk: u64, sum: f64, expected: f64) -> String {
    format!(
        "the partial sum {sum:e} of chunk {chunk} is not the series' ({expected:e}, to \
         {SUM_TOLERANCE:e})"
    )
}

/// The error for line `line` of the file `path`.
fn corrupt(path: &Path, line: usize, reason: &str) -> StateError {
    StateError::Corrupt { path: path.to_path_buf(), line, reason: reason.to_string() }
}

/// Whether the lines of the file carry checksums, by its first line: a v3 or a v2 file;
/// any other first line is an error (a v1 file is told from damage by its second line).
fn summed(text: &str, path: &Path) -> Result<bool, StateError> {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().ok_or_else(|| corrupt(path, 1, "empty file"))?;
    if let Some(reason) =
        stray_header(first.strip_suffix('\n').unwrap_or(first), &[MAGIC, MAGIC_V2, MAGIC_V1])
    {
        return Err(corrupt(path, 1, &reason));
    }
    match Version::of(first) {
        Some(Version::V3) => Ok(true),
        Some(Version::V2) => Ok(false),
        // A v1 file's next line is its terms: anything else is damage, not a version.
        Some(Version::V1) => match lines.next() {
            Some(l) if l.starts_with("terms ") && l.split(' ').count() == 2 => {
                Err(StateError::OtherKernel { path: path.to_path_buf(), found: 1 })
            }
            _ => Err(corrupt(path, 2, "not a v1 file's terms line")),
        },
        None if first.starts_with("pifork-state ") => Err(StateError::OtherVersion {
            path: path.to_path_buf(),
            found: first.strip_suffix('\n').unwrap_or(first).to_string(),
        }),
        None => Err(corrupt(path, 1, "no pifork-state header")),
    }
}

/// The lines of a state file after its first, each with its number, checksums checked and
/// stripped (a v3 file) or as they are (a v2 file).
fn checked_lines<'a>(text: &'a str, path: &Path) -> Result<Vec<(usize, &'a str)>, StateError> {
    let summed = summed(text, path)?;
    let mut lines = text.split_inclusive('\n').enumerate().map(|(i, l)| (i + 1, l));
    let mut digest = CRC32C.digest();
    if let Some((_, first)) = lines.next() {
        digest.update(first.as_bytes());
    }
    let mut out = Vec::new();
    for (n, line) in lines {
        let Some(content) = line.strip_suffix('\n') else {
            return Err(corrupt(path, n, "cut short: no end of line"));
        };
        if let Some(what) = stray_end(content) {
            return Err(corrupt(path, n, &format!("the line ends with {what}")));
        }
        let content = if summed {
            let (content, sum) =
                content.rsplit_once(' ').ok_or_else(|| corrupt(path, n, "no checksum"))?;
            let mut here = digest.clone();
            here.update(content.as_bytes());
            here.update(b" ");
            if sum != format!("{:08x}", here.finalize()) {
                let reason = "checksum mismatch: the file was changed after it was written";
                return Err(corrupt(path, n, reason));
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

/// Reads the checked lines of a state file in order, naming the file and the line in its
/// errors.
struct Reader<'a> {
    path: &'a Path,
    lines: std::vec::IntoIter<(usize, &'a str)>,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, line: usize, reason: &str) -> StateError {
        corrupt(self.path, line, reason)
    }

    /// The next line, which must be `name VALUE`: its number and its value.
    fn field(&mut self, name: &str) -> Result<(usize, &'a str), StateError> {
        let Some((n, line)) = self.lines.next() else {
            return Err(self.corrupt(0, &format!("cut short before '{name}'")));
        };
        match line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')) {
            Some(value) => Ok((n, value)),
            None => Err(self.corrupt(n, &format!("expected '{name} ...'"))),
        }
    }

    /// The next line, which must be `name NUMBER`: its number.
    fn number(&mut self, name: &str) -> Result<u64, StateError> {
        let (n, value) = self.field(name)?;
        parse_number(value).ok_or_else(|| self.corrupt(n, "bad number"))
    }

    /// The lines before the chunks: the kernel's version, the job and the time spent on it.
    fn header(&mut self) -> Result<State, StateError> {
        let version = self.number("kernel")?;
        if version != u64::from(kernel::VERSION) {
            return Err(StateError::OtherKernel {
                path: self.path.to_path_buf(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
            });
        }
        let terms = self.number("terms")?;
        let chunk = self.number("chunk")?;
        if terms == 0 || chunk == 0 || terms > MAX_TERMS {
            return Err(self.corrupt(3, "terms and chunk must be positive"));
        }
        if check_job(terms, chunk).is_err() {
            return Err(self.corrupt(4, &format!("more than {MAX_CHUNKS} chunks")));
        }
        let (n, elapsed) = self.field("elapsed")?;
        let elapsed = elapsed
            .parse::<f64>()
            .ok()
            .filter(|e| e.is_finite() && *e >= 0.0)
            .ok_or_else(|| self.corrupt(n, "bad elapsed time"))?;
        Ok(State { terms, chunk, elapsed, done: BTreeMap::new() })
    }

    /// The lines after the header: `done` lines into `state`, perhaps a `result` line, and
    /// the `end` line, the last.
    fn chunks(&mut self, state: &mut State) -> Result<(), StateError> {
        let mut result = None;
        while let Some((n, line)) = self.lines.next() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("done"), Some(index), Some(bits), None) => {
                    self.done(state, n, index, bits)?;
                }
                (Some("result"), Some(bits), None, None) => {
                    let bits = parse_bits(bits).ok_or_else(|| self.corrupt(n, "bad result"))?;
                    result = Some((n, bits));
                }
                (Some("end"), Some(count), None, None) => return self.end(state, n, count, result),
                _ => return Err(self.corrupt(n, "unexpected line")),
            }
        }
        Err(self.corrupt(0, "cut short: no 'end' line"))
    }

    /// Line `n`, `done INDEX BITS`: records a chunk's partial sum, which must be the series'
    /// own, once.
    fn done(&self, state: &mut State, n: usize, index: &str, bits: &str) -> Result<(), StateError> {
        let i = parse_number(index)
            .filter(|&i| i < state.chunks())
            .ok_or_else(|| self.corrupt(n, "bad chunk index"))?;
        let sum = parse_bits(bits).ok_or_else(|| self.corrupt(n, "bad partial sum"))?;
        if state.done.contains_key(&i) {
            return Err(self.corrupt(n, "chunk listed twice"));
        }
        match state.record(i, sum) {
            Err(StateError::Implausible { expected, .. }) => {
                Err(self.corrupt(n, &implausible(i, sum, expected)))
            }
            _ => Ok(()),
        }
    }

    /// Line `n`, `end COUNT`: the number of `done` lines, and then nothing more; the `result`
    /// line, if there was one, must be the estimate of the chunks, all done.
    fn end(
        &mut self,
        state: &State,
        n: usize,
        count: &str,
        result: Option<(usize, f64)>,
    ) -> Result<(), StateError> {
        if count.parse::<usize>().ok() != Some(state.done.len()) {
            return Err(self.corrupt(n, "chunk count does not match"));
        }
        if let Some((m, r)) = result
            && (!state.complete() || state.estimate().map(f64::to_bits) != Some(r.to_bits()))
        {
            return Err(self.corrupt(m, "result does not match the chunks"));
        }
        match self.lines.next() {
            None => Ok(()),
            Some((m, _)) => Err(self.corrupt(m, "text after 'end'")),
        }
    }
}

/// A number in its one decimal form (no sign, no leading zero).
fn parse_number(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|x| x.to_string() == text)
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
    use crate::service::state::job::tests::sample;

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
    fn a_header_or_line_with_a_stray_end_names_the_character() {
        let v3 = sample().to_text();
        let crlf = v3.replace('\n', "\r\n");
        let reason = corrupt_reason(&crlf);
        assert!(
            reason.starts_with("the header \"pifork-state v3\" ends with a carriage return (CR"),
            "{reason}"
        );
        let spaced = v3.replacen('\n', " \n", 1);
        let reason = corrupt_reason(&spaced);
        assert_eq!(reason, "the header \"pifork-state v3\" ends with a trailing space");
        let v2 =
            unsealed(&v3).replace(MAGIC, MAGIC_V2).replacen("\nterms 10\n", "\nterms 10\r\n", 1);
        assert_eq!(
            corrupt_reason(&v2),
            "the line ends with a carriage return (CR, \\r: Windows line ends?)"
        );
        // Another version's header keeps what ends it, for the error to show.
        let other = State::parse("pifork-state v9\r\n", Path::new("f")).unwrap_err();
        assert!(other.to_string().contains("(it starts with \"pifork-state v9\\r\")"), "{other}");
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
        assert!(
            matches!(&old, StateError::OtherKernel { path, found: 1 } if path == Path::new("f")),
            "{old:?}"
        );
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
}
