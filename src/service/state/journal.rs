//! The journal's text: the chunks finished since the snapshot, one appended line each.
//!
//! ```text
//! pifork-journal v1
//! follows 404c9e45 1c0a7d32             (the checksum that ends the snapshot it follows)
//! done 7 3e4ad7f29abcaf30 12.250 9b2e40a1
//! done 6 be4ad7f29abc0f31 12.262 77c1d0e3
//! elapsed 13.500 0d3f6a52               (the time spent, at a stop)
//! ```
//!
//! Every line after the first ends with a CRC-32C of the journal's bytes from its start up to
//! and including the space before it, as in the state file: each checksum covers every line
//! before it, so no record can be changed, dropped from the middle or moved without the
//! line that follows it failing its checksum. The `follows` line names the snapshot the
//! journal continues by the checksum that ends that snapshot (its [`identity`]): a journal
//! that follows another snapshot is stale (a compaction wrote its records into the snapshot
//! and was stopped before it replaced the journal) and is ignored.
//!
//! What is refused and what is dropped, precisely:
//! - a record is *committed* once its end of line is written (the writer writes each record
//!   with one call, its end of line last). Every committed line must be whole and right: its
//!   checksum, its syntax, a chunk of the job, a sum that is the series' own, no second
//!   different sum for a chunk (the same sum twice is taken once). Anything else is damage,
//!   refused like a damaged state file: one line, the file left untouched.
//! - the bytes after the last end of line are an append cut short (a crash, a SIGKILL, a full
//!   file system, a power cut): dropped, and the service cuts them off before it appends
//!   again, if they can be that: at most [`TORN_MAX`] bytes of what records are made of
//!   (lowercase letters, digits, `.` and space), then perhaps NUL bytes (what some file
//!   systems leave beyond the last synced byte after a power cut). Anything else is damage:
//!   a changed bit in the last record's end of line, in particular, leaves a byte no record
//!   has (no single changed bit turns one of those bytes into an end of line, or an end of
//!   line into one of them), and is refused.
//! - the first two lines must be committed: the writer creates a journal whole (a temporary
//!   file, synced and renamed), so a journal without them is damage.

use std::path::Path;

use crc::Digest;

use super::error::StateError;
use super::format::{CRC32C, implausible, stray_end, stray_header};
use super::job::State;

#[cfg(doc)]
use super::format::identity;

/// The journal's name inside the state directory.
pub const JOURNAL: &str = "journal";

/// The first line of a journal of this version.
pub const JOURNAL_MAGIC: &str = "pifork-journal v1";

/// The longest cut-short append dropped from a journal's end (a record is under 60 bytes).
pub const TORN_MAX: usize = 256;

/// The running CRC-32C of a journal's bytes, which seals each new line.
#[derive(Clone)]
pub struct Chain(Digest<'static, u32>);

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chain({:08x})", self.0.clone().finalize())
    }
}

impl Chain {
    /// The chain of a journal's first line.
    fn start() -> Chain {
        let mut digest = CRC32C.digest();
        digest.update(JOURNAL_MAGIC.as_bytes());
        digest.update(b"\n");
        Chain(digest)
    }

    /// `content` sealed as the journal's next line, with its end of line; the chain moves
    /// past it.
    pub fn seal(&mut self, content: &str) -> String {
        let mut line = String::with_capacity(content.len() + 10);
        line.push_str(content);
        line.push(' ');
        self.0.update(line.as_bytes());
        let sum = format!("{:08x}\n", self.0.clone().finalize());
        self.0.update(sum.as_bytes());
        line.push_str(&sum);
        line
    }

    /// Whether `content`'s checksum is `sum`, the chain where `content` begins.
    fn checks(&self, content: &str, sum: &str) -> bool {
        let mut here = self.0.clone();
        here.update(content.as_bytes());
        here.update(b" ");
        sum == format!("{:08x}", here.finalize())
    }
}

/// The first two lines of a journal that follows the snapshot of identity `follows`, and the
/// chain after them.
pub fn header(follows: u32) -> (String, Chain) {
    let mut chain = Chain::start();
    let follows = chain.seal(&format!("follows {follows:08x}"));
    (format!("{JOURNAL_MAGIC}\n{follows}"), chain)
}

/// A finished chunk's record: its index, its partial sum (the bits of the `f64`) and the
/// seconds spent on the job when it was recorded.
pub fn done_line(chain: &mut Chain, index: u64, sum: f64, elapsed: f64) -> String {
    chain.seal(&format!("done {index} {:016x} {elapsed:.3}", sum.to_bits()))
}

/// The record of the seconds spent on the job, written at a stop.
pub fn elapsed_line(chain: &mut Chain, elapsed: f64) -> String {
    chain.seal(&format!("elapsed {elapsed:.3}"))
}

/// A committed record of a journal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Record {
    /// A finished chunk.
    Done {
        /// The chunk.
        index: u64,
        /// Its partial sum.
        sum: f64,
        /// Seconds spent on the job when it was recorded.
        elapsed: f64,
    },
    /// Seconds spent on the job, at a stop.
    Elapsed(f64),
}

/// A journal, read: which snapshot it follows, its committed records, and where they end.
#[derive(Debug, Clone)]
pub struct Journal {
    /// The identity of the snapshot it follows.
    pub follows: u32,
    /// The committed records, each with its line number.
    pub records: Vec<(usize, Record)>,
    /// Bytes up to the end of the last committed line.
    pub committed: u64,
    /// Bytes of the records (the committed bytes after the first two lines).
    pub record_bytes: u64,
    /// Bytes after the last committed line: an append cut short, dropped.
    pub torn: u64,
    /// The chain after the last committed line, to append the next record with.
    pub chain: Chain,
}

/// The error for line `line` of the journal `path`.
fn corrupt(path: &Path, line: usize, reason: &str) -> StateError {
    StateError::Corrupt { path: path.to_path_buf(), line, reason: reason.to_string() }
}

/// Whether `tail`, the bytes after a journal's last end of line, can be an append cut short
/// (see the module's documentation).
fn is_torn_append(tail: &[u8]) -> bool {
    let text = &tail[..tail.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)];
    text.len() <= TORN_MAX
        && text
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b' ')
}

impl Journal {
    /// Reads a journal's bytes (`path` only names it in errors): the syntax and the
    /// checksums of its committed lines; whether its records fit the job is for
    /// [`Journal::apply`].
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Journal, StateError> {
        let committed = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let (body, tail) = bytes.split_at(committed);
        let text = std::str::from_utf8(body).map_err(|_| corrupt(path, 0, "not text"))?;
        let mut lines = text.split_inclusive('\n').enumerate().map(|(i, l)| (i + 1, l));
        let lines_seen = text.matches('\n').count();
        if !is_torn_append(tail) {
            let reason = "the end is damaged: bytes after the last record that no record holds";
            return Err(corrupt(path, lines_seen + 1, reason));
        }
        let first = lines.next().map(|(_, l)| l.trim_end_matches('\n'));
        match first {
            Some(JOURNAL_MAGIC) => {}
            None => return Err(corrupt(path, 1, "cut short: no pifork-journal header")),
            Some(first) => {
                if let Some(reason) = stray_header(first, &[JOURNAL_MAGIC]) {
                    return Err(corrupt(path, 1, &reason));
                }
                if first.starts_with("pifork-journal ") {
                    return Err(StateError::OtherVersion {
                        path: path.to_path_buf(),
                        found: first.to_string(),
                    });
                }
                return Err(corrupt(path, 1, "no pifork-journal header"));
            }
        }
        let mut chain = Chain::start();
        let mut follows = None;
        let mut records = Vec::new();
        let mut header_bytes = (JOURNAL_MAGIC.len() + 1) as u64;
        for (n, line) in lines {
            let content = line.trim_end_matches('\n');
            if let Some(what) = stray_end(content) {
                return Err(corrupt(path, n, &format!("the line ends with {what}")));
            }
            let (content, sum) =
                content.rsplit_once(' ').ok_or_else(|| corrupt(path, n, "no checksum"))?;
            if !chain.checks(content, sum) {
                let reason = "checksum mismatch: the file was changed after it was written";
                return Err(corrupt(path, n, reason));
            }
            chain.0.update(line.as_bytes());
            if n == 2 {
                let value = content.strip_prefix("follows ");
                let id = value.and_then(|v| parse_hex(v, 8)).map(|id| id as u32);
                follows = Some(id.ok_or_else(|| corrupt(path, n, "expected 'follows ...'"))?);
                header_bytes += line.len() as u64;
            } else {
                records.push((n, record(content).ok_or_else(|| corrupt(path, n, "bad record"))?));
            }
        }
        let follows = follows.ok_or_else(|| corrupt(path, 2, "cut short: no 'follows' line"))?;
        Ok(Journal {
            follows,
            records,
            committed: committed as u64,
            record_bytes: committed as u64 - header_bytes,
            torn: tail.len() as u64,
            chain,
        })
    }

    /// Adds the records to `state`, whose snapshot this journal follows: each must be a chunk
    /// of the job with the series' own sum, and a chunk already done must have the same sum
    /// (it is then taken once). The last time recorded becomes the state's.
    pub fn apply(&self, state: &mut State, path: &Path) -> Result<(), StateError> {
        for &(n, record) in &self.records {
            match record {
                Record::Done { index, sum, elapsed } => {
                    if index >= state.chunks() {
                        return Err(corrupt(path, n, "bad chunk index"));
                    }
                    match state.done.get(&index) {
                        Some(old) if old.to_bits() == sum.to_bits() => {}
                        Some(_) => {
                            let reason = format!("chunk {index} recorded twice with other sums");
                            return Err(corrupt(path, n, &reason));
                        }
                        None => {
                            if let Err(StateError::Implausible { expected, .. }) =
                                state.record(index, sum)
                            {
                                let reason = implausible(index, sum, expected);
                                return Err(corrupt(path, n, &reason));
                            }
                        }
                    }
                    state.elapsed = elapsed;
                }
                Record::Elapsed(elapsed) => state.elapsed = elapsed,
            }
        }
        Ok(())
    }
}

/// A record's content (without its checksum).
fn record(content: &str) -> Option<Record> {
    let mut words = content.split(' ');
    let record = match (words.next()?, words.next(), words.next(), words.next()) {
        ("done", Some(index), Some(bits), Some(elapsed)) => Record::Done {
            index: index.parse().ok().filter(|i: &u64| i.to_string() == index)?,
            sum: f64::from_bits(parse_hex(bits, 16)?),
            elapsed: parse_elapsed(elapsed)?,
        },
        ("elapsed", Some(elapsed), None, None) => Record::Elapsed(parse_elapsed(elapsed)?),
        _ => return None,
    };
    words.next().is_none().then_some(record)
}

/// Exactly `digits` lowercase hex digits.
fn parse_hex(text: &str, digits: usize) -> Option<u64> {
    let value = u64::from_str_radix(text, 16).ok()?;
    (format!("{value:0digits$x}") == text).then_some(value)
}

/// Seconds, as the writer writes them: finite, not negative, three decimals.
fn parse_elapsed(text: &str) -> Option<f64> {
    let value = text.parse::<f64>().ok().filter(|e| e.is_finite() && *e >= 0.0)?;
    (format!("{value:.3}") == text).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pi;
    use crate::service::state::job::tests::sample;

    /// A journal after `sample()`'s snapshot (10 terms in chunks of 4): chunk 1, then a stop.
    fn journal() -> String {
        let (mut text, mut chain) = header(0x1234_abcd);
        text.push_str(&done_line(&mut chain, 1, pi::partial_sum(5, 8), 2.25));
        text.push_str(&elapsed_line(&mut chain, 3.5));
        text
    }

    fn parse(text: &[u8]) -> Result<Journal, StateError> {
        Journal::parse(text, Path::new("j"))
    }

    fn corrupt_reason(text: &[u8]) -> String {
        let applied = parse(text).and_then(|j| j.apply(&mut sample(), Path::new("j")));
        match applied {
            Err(StateError::Corrupt { reason, .. }) => reason,
            other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(text)),
        }
    }

    #[test]
    fn records_round_trip_and_complete_the_state() {
        let text = journal();
        let j = parse(text.as_bytes()).unwrap();
        assert_eq!(j.follows, 0x1234_abcd);
        let sum = pi::partial_sum(5, 8);
        assert_eq!(
            j.records,
            vec![(3, Record::Done { index: 1, sum, elapsed: 2.25 }), (4, Record::Elapsed(3.5))]
        );
        assert_eq!((j.committed, j.torn), (text.len() as u64, 0));
        let header_len = header(0x1234_abcd).0.len() as u64;
        assert_eq!(j.record_bytes, text.len() as u64 - header_len);
        let mut state = sample();
        j.apply(&mut state, Path::new("j")).unwrap();
        assert!(state.complete());
        assert_eq!((state.done[&1].to_bits(), state.elapsed), (sum.to_bits(), 3.5));
        // The chain goes on where the journal ends: a record appended with it reads back.
        let mut chain = j.chain.clone();
        let more = format!("{text}{}", elapsed_line(&mut chain, 4.0));
        assert_eq!(parse(more.as_bytes()).unwrap().records.len(), 3);
        // Each checksum is that of every byte before it, as in the state file.
        let second = text.split_inclusive('\n').take(2).collect::<String>();
        let (covered, sum) = second.trim_end().rsplit_once(' ').unwrap();
        assert_eq!(format!("{:08x}", CRC32C.checksum(format!("{covered} ").as_bytes())), sum);
    }

    #[test]
    fn an_append_cut_short_is_dropped_at_every_byte() {
        let text = journal();
        let last = text[..text.len() - 1].rfind('\n').unwrap() + 1;
        for cut in last..text.len() {
            let j = parse(&text.as_bytes()[..cut]).unwrap();
            assert_eq!((j.committed, j.torn), (last as u64, (cut - last) as u64), "cut {cut}");
            assert_eq!(j.records.len(), 1);
        }
        // And the NUL bytes a file system may leave after it.
        let mut zeros = text.as_bytes()[..last + 7].to_vec();
        zeros.extend([0; 4096]);
        assert_eq!(parse(&zeros).unwrap().torn, 7 + 4096);
        // Cut inside the header, it is damage.
        let header_len = header(1).0.len();
        for cut in 0..header_len {
            assert!(parse(&text.as_bytes()[..cut]).is_err(), "cut {cut}");
        }
        assert!(corrupt_reason(&text.as_bytes()[..header_len - 1]).contains("no 'follows'"));
    }

    #[test]
    fn every_single_bit_flip_in_a_committed_line_is_refused() {
        let text = journal().into_bytes();
        for byte in 0..text.len() {
            for bit in 0..8 {
                let mut bad = text.clone();
                bad[byte] ^= 1 << bit;
                let applied = parse(&bad).and_then(|j| {
                    let mut state = sample();
                    j.apply(&mut state, Path::new("j")).map(|()| (j, state))
                });
                // The follows line changed with a checksum that matches cannot happen: a
                // journal that reads is this one.
                assert!(applied.is_err(), "byte {byte} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn damage_with_valid_checksums_is_refused() {
        let resealed = |lines: &[&str]| {
            let (mut text, mut chain) = header(7);
            for l in lines {
                text.push_str(&chain.seal(l));
            }
            text.into_bytes()
        };
        let sum1 = format!("{:016x}", pi::partial_sum(5, 8).to_bits());
        let sum0 = format!("{:016x}", pi::partial_sum(1, 4).to_bits());
        let other0 =
            format!("{:016x}", f64::from_bits(pi::partial_sum(1, 4).to_bits() + 1).to_bits());
        let zero = format!("{:016x}", 0.0f64.to_bits());
        let cases = [
            (vec![format!("done 3 {sum1} 1.000")], "bad chunk index"),
            (vec![format!("done 1 {zero} 1.000")], "is not the series'"),
            (vec![format!("done 1 {sum0} 1.000")], "is not the series'"),
            (vec![format!("done 0 {other0} 1.000")], "recorded twice with other sums"),
            (vec![format!("done 1 {sum1} 1.0")], "bad record"),
            (vec![format!("done 1 {sum1} -1.000")], "bad record"),
            (vec![format!("done 1 {sum1} inf")], "bad record"),
            (vec![format!("done 01 {sum1} 1.000")], "bad record"),
            (vec![format!("done 1 {} 1.000", sum1.to_uppercase())], "bad record"),
            (vec![format!("done 1 {sum1}")], "bad record"),
            (vec![format!("done 1 {sum1} 1.000 x")], "bad record"),
            (vec!["elapsed".to_string()], "bad record"),
            (vec!["result 1".to_string()], "bad record"),
        ];
        for (lines, why) in cases {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let reason = corrupt_reason(&resealed(&lines));
            assert!(reason.contains(why), "{lines:?}: {reason} / {why}");
        }
        // The same sum twice is one chunk.
        let mut state = sample();
        let twice = resealed(&[&format!("done 0 {sum0} 1.000"), &format!("done 1 {sum1} 2.000")]);
        parse(&twice).unwrap().apply(&mut state, Path::new("j")).unwrap();
        assert_eq!(state.done.len(), 3);
        // Bytes after the last record that no record holds, or too many of them.
        let mut text = journal().into_bytes();
        text.extend(b"done 1 \x01");
        assert!(corrupt_reason(&text).contains("the end is damaged"));
        let mut text = journal().into_bytes();
        text.extend([b'1'; TORN_MAX + 1]);
        assert!(corrupt_reason(&text).contains("the end is damaged"));
        let mut text = journal().into_bytes();
        text.extend(b"\x00\x00done");
        assert!(corrupt_reason(&text).contains("the end is damaged"));
    }

    #[test]
    fn headers_are_refused_with_what_is_wrong() {
        let text = journal();
        let crlf = text.replacen(JOURNAL_MAGIC, &format!("{JOURNAL_MAGIC}\r"), 1);
        let reason = corrupt_reason(crlf.as_bytes());
        assert!(reason.contains("ends with a carriage return (CR"), "{reason}");
        let spaced = text.replacen(JOURNAL_MAGIC, &format!("{JOURNAL_MAGIC} "), 1);
        assert!(corrupt_reason(spaced.as_bytes()).contains("ends with a trailing space"));
        let v9 = text.replacen("v1", "v9", 1);
        assert!(matches!(parse(v9.as_bytes()), Err(StateError::OtherVersion { .. })));
        assert!(corrupt_reason(b"pifork-state v3\n").contains("no pifork-journal header"));
        assert!(corrupt_reason(b"").contains("cut short"));
        // A record's line with Windows line ends.
        let rest = text.strip_prefix(JOURNAL_MAGIC).unwrap().strip_prefix('\n').unwrap();
        let lines = format!("{JOURNAL_MAGIC}\n{}", rest.replace('\n', "\r\n"));
        assert!(corrupt_reason(lines.as_bytes()).contains("line ends with a carriage return"));
        // A journal of the right version but not text.
        let mut binary = text.into_bytes();
        binary[25] = 0xff;
        assert!(corrupt_reason(&binary).contains("not text"));
    }
}
