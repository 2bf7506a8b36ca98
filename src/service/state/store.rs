//! The service's writer of its state: a finished chunk is one record appended to the journal
//! (one write, no sync), the journal is synced at most once per [`SYNC_EVERY`] and at a
//! stop, and the snapshot is rewritten (a compaction) only when the journal has grown past
//! it, so that saving costs the same whatever the number of chunks done.
//!
//! A compaction writes the whole state as a new snapshot (a temporary file, fsync, rename,
//! fsync of the directory), then a new, empty journal that follows it (the same way), and
//! goes on appending to that. A crash between the two leaves the new snapshot and the old
//! journal, which follows the old snapshot: stale, ignored (its records are in the new
//! snapshot), and replaced when the service starts again.
//!
//! When: once the journal's records take more bytes than the snapshot (and than
//! [`COMPACT_FLOOR`]), so that each compaction writes at most about twice what the one
//! before wrote, and the bytes written per chunk stay bounded: a record (under 60 bytes)
//! plus, amortised, a few times a snapshot line (38 bytes) — about 150 bytes a chunk however
//! many are done, where rewriting the file per chunk wrote 38 bytes times the chunks done.
//! Besides: when the last chunk is recorded (the snapshot then holds the result), at a
//! start that finds no journal to go on with (none, a stale one, or one past the bound), and
//! at a stop if the state is small ([`COMPACT_FLOOR`]); a stop otherwise appends the time
//! spent and syncs.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::StateError;
use super::file::{self, FILE};
use super::format::MAX_BYTES;
use super::job::{State, check_job};
use super::journal::{self, Chain, JOURNAL};
use super::lock::Lock;
use super::read_state;

/// The journal is synced at most this often (and at a stop): a power cut loses at most the
/// chunks recorded in the last such interval.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// The journal's records may take this many bytes (about 1,300 chunks) before a compaction,
/// however small the snapshot; a state this small is also compacted at a stop.
pub const COMPACT_FLOOR: u64 = 64 * 1024;

/// The largest journal read: its records never take more bytes than the snapshot (at most
/// [`MAX_BYTES`]) or [`COMPACT_FLOOR`] before they are compacted, plus one record and an
/// append cut short.
pub const MAX_JOURNAL_BYTES: u64 = 2 * MAX_BYTES;

/// How many bytes of records the journal may hold before a compaction, after a snapshot of
/// `snapshot` bytes.
fn bound(snapshot: u64) -> u64 {
    snapshot.max(COMPACT_FLOOR)
}

/// What a [`Store`] has written since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Bytes written to the state directory's files.
    pub bytes: u64,
    /// Snapshots written (compactions).
    pub compactions: u64,
    /// Syncs of the journal (besides the four of each compaction).
    pub syncs: u64,
}

/// Writes `state` as the snapshot of `dir`: its identity and size.
fn write_snapshot(dir: &Path, state: &State) -> Result<(u32, u64), StateError> {
    let (text, identity) = state.to_sealed();
    file::replace(dir, FILE, text.as_bytes())?;
    Ok((identity, text.len() as u64))
}

/// Creates the empty journal of `dir` that follows the snapshot of identity `follows`: the
/// file, open at its end, the chain to append with, and its size.
fn new_journal(dir: &Path, follows: u32) -> Result<(File, Chain, u64), StateError> {
    let (header, chain) = journal::header(follows);
    let file = file::replace(dir, JOURNAL, header.as_bytes())?;
    Ok((file, chain, header.len() as u64))
}

/// Writes `state` to `dir` whole: a snapshot and an empty journal that follows it.
pub(super) fn compact(dir: &Path, state: &State) -> Result<(), StateError> {
    let (identity, _) = write_snapshot(dir, state)?;
    new_journal(dir, identity).map(drop)
}

/// The state directory of a running service, open for writing: the journal at its end.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    journal: File,
    chain: Chain,
    /// Bytes of the journal.
    len: u64,
    /// Bytes of its records (after its header).
    record_bytes: u64,
    /// Bytes of the snapshot it follows.
    snapshot_bytes: u64,
    /// The snapshot was replaced but the journal was not (a compaction failed half way):
    /// the journal is stale, and only a compaction records anything.
    stale: bool,
    synced: Instant,
    unsynced: bool,
    written: Written,
}

impl Store {
    /// Opens the state of `dir` (whose [`Lock`] the caller holds) for a job of `terms` in
    /// chunks of `chunk`: loads it (or starts a fresh one), cuts off an append cut short at
    /// the journal's end, and goes on with that journal, or compacts if there is none to go
    /// on with. A state for other parameters, or damage, is an error, and nothing is written.
    pub fn open(
        dir: &Path,
        _lock: &Lock,
        terms: u64,
        chunk: u64,
    ) -> Result<(Store, State), StateError> {
        check_job(terms, chunk)?;
        if dir.as_os_str().is_empty() {
            return Err(StateError::EmptyDir);
        }
        let path = dir.join(JOURNAL);
        let mut options = OpenOptions::new();
        let file = file::open_regular(&path, options.read(true).write(true), "open")?;
        let bytes = file.as_ref().map(|f| file::read_all(f, &path, MAX_JOURNAL_BYTES));
        let loaded = read_state(dir, bytes.transpose()?)?;
        let Some(loaded) = loaded else {
            return Store::fresh(dir, path, State::new(terms, chunk));
        };
        if (loaded.state.terms, loaded.state.chunk) != (terms, chunk) {
            return Err(StateError::OtherParameters {
                path: dir.join(FILE),
                found: (loaded.state.terms, loaded.state.chunk),
                wanted: (terms, chunk),
            });
        }
        let state = loaded.state;
        let go_on = |j: &journal::Journal| {
            // Within the bound, and not a complete job whose snapshot lacks the result.
            j.record_bytes <= bound(loaded.snapshot_bytes)
                && (j.records.is_empty() || !state.complete())
        };
        let (Some(journal), Some(file)) = (loaded.journal.filter(go_on), file) else {
            return Store::fresh(dir, path, state);
        };
        file::check_single_link(&file, &path)?;
        let io = |op, source| StateError::Io { path: path.clone(), op, source };
        if journal.torn > 0 {
            file.set_len(journal.committed).map_err(|e| io("truncate", e))?;
            log::warn!(
                "pifork serve: {}: dropped the last {} bytes, a record cut short by a crash",
                path.display(),
                journal.torn
            );
        }
        // What the last run appended is on disk before anything more is.
        file.sync_data().map_err(|e| io("sync", e))?;
        let store = Store {
            dir: dir.to_path_buf(),
            journal: file,
            chain: journal.chain,
            len: journal.committed,
            record_bytes: journal.record_bytes,
            snapshot_bytes: loaded.snapshot_bytes,
            stale: false,
            synced: Instant::now(),
            unsynced: false,
            written: Written::default(),
            path,
        };
        Ok((store, state))
    }

    /// A store of `state`, compacted into `dir` at once.
    fn fresh(dir: &Path, path: PathBuf, state: State) -> Result<(Store, State), StateError> {
        let (identity, snapshot_bytes) = write_snapshot(dir, &state)?;
        let (journal, chain, len) = new_journal(dir, identity)?;
        let store = Store {
            dir: dir.to_path_buf(),
            path,
            journal,
            chain,
            len,
            record_bytes: 0,
            snapshot_bytes,
            stale: false,
            synced: Instant::now(),
            unsynced: false,
            written: Written { bytes: snapshot_bytes + len, compactions: 1, syncs: 0 },
        };
        Ok((store, state))
    }

    /// Records chunk `index`'s partial sum in `state` (if it is the series' own, see
    /// [`State::record`]) and appends it, with `state.elapsed`, to the journal; compacts when
    /// the journal has grown past its bound or the job is complete. A chunk already recorded
    /// keeps its first sum. Once this returns, a crash of the service cannot lose the chunk;
    /// a power cut can until the next sync ([`Store::sync_due`]). If it cannot be written,
    /// the chunk is not recorded in `state` either.
    pub fn record(&mut self, state: &mut State, index: u64, sum: f64) -> Result<(), StateError> {
        if state.done.contains_key(&index) {
            return Ok(());
        }
        state.record(index, sum)?;
        let saved = if self.stale {
            self.compact(state)
        } else {
            let mut chain = self.chain.clone();
            let line = journal::done_line(&mut chain, index, sum, state.elapsed);
            self.append(&line, chain)
        };
        if let Err(e) = saved {
            // Not on disk: not recorded.
            state.done.remove(&index);
            return Err(e);
        }
        if state.complete() || self.record_bytes > bound(self.snapshot_bytes) {
            self.compact(state)?;
        }
        Ok(())
    }

    /// Appends `line`, sealed with `chain`; on failure the journal is cut back to where it
    /// was (if that fails too, the next start drops the part written).
    fn append(&mut self, line: &str, chain: Chain) -> Result<(), StateError> {
        if let Err(source) = self.journal.write_all_at(line.as_bytes(), self.len) {
            let _ = self.journal.set_len(self.len);
            return Err(StateError::Io { path: self.path.clone(), op: "append to", source });
        }
        let n = line.len() as u64;
        self.len += n;
        self.record_bytes += n;
        self.written.bytes += n;
        self.chain = chain;
        self.unsynced = true;
        Ok(())
    }

    /// Writes `state` whole: a new snapshot, then a new journal that follows it.
    fn compact(&mut self, state: &State) -> Result<(), StateError> {
        // If this fails, the old snapshot and journal stand.
        let (identity, snapshot_bytes) = write_snapshot(&self.dir, state)?;
        self.stale = true;
        self.snapshot_bytes = snapshot_bytes;
        self.written.bytes += snapshot_bytes;
        self.written.compactions += 1;
        let (journal, chain, len) = new_journal(&self.dir, identity)?;
        (self.journal, self.chain, self.len) = (journal, chain, len);
        self.record_bytes = 0;
        self.written.bytes += len;
        self.stale = false;
        self.unsynced = false;
        self.synced = Instant::now();
        Ok(())
    }

    /// When the journal must be synced next: [`SYNC_EVERY`] after the last sync, if anything
    /// was appended since.
    pub fn sync_due(&self) -> Option<Instant> {
        self.unsynced.then(|| self.synced + SYNC_EVERY)
    }

    /// Syncs the journal if that is due.
    pub fn sync_if_due(&mut self) -> Result<(), StateError> {
        match self.sync_due() {
            Some(due) if Instant::now() >= due => self.sync(),
            _ => Ok(()),
        }
    }

    /// Syncs the journal now, if anything was appended since the last sync.
    pub fn sync(&mut self) -> Result<(), StateError> {
        if !self.unsynced {
            return Ok(());
        }
        self.journal.sync_data().map_err(|source| StateError::Io {
            path: self.path.clone(),
            op: "sync",
            source,
        })?;
        self.written.syncs += 1;
        self.unsynced = false;
        self.synced = Instant::now();
        Ok(())
    }

    /// At a stop: records the time spent (`state.elapsed`) and syncs; a small state is
    /// compacted instead. A complete state, written whole when its last chunk was, is left
    /// as it is.
    pub fn close(&mut self, state: &State) -> Result<(), StateError> {
        if self.stale
            || (!state.complete() && self.snapshot_bytes + self.record_bytes <= COMPACT_FLOOR)
        {
            return self.compact(state);
        }
        if !state.complete() {
            let mut chain = self.chain.clone();
            let line = journal::elapsed_line(&mut chain, state.elapsed);
            self.append(&line, chain)?;
        }
        self.sync()
    }

    /// What this store has written so far.
    pub fn written(&self) -> Written {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::super::journal::{JOURNAL_MAGIC, Journal};
    use super::*;
    use crate::plan::expected_sum;

    /// A fresh directory for test `name`, and its lock.
    fn dir(name: &str) -> (PathBuf, Lock) {
        let dir = std::env::temp_dir().join(format!("pifork-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lock = Lock::acquire(&dir).unwrap();
        (dir, lock)
    }

    /// The series' own sum of chunk `i` of `state`'s job.
    fn sum(state: &State, i: u64) -> f64 {
        let (first, last) = state.bounds(i);
        expected_sum(first, last)
    }

    /// Records chunk `i` of `state` with its sum.
    fn put(store: &mut Store, state: &mut State, i: u64) {
        let s = sum(state, i);
        store.record(state, i, s).unwrap();
    }

    /// A job of `chunks` chunks of 1000 terms.
    fn open(dir: &Path, lock: &Lock, chunks: u64) -> (Store, State) {
        Store::open(dir, lock, chunks * 1000, 1000).unwrap()
    }

    fn loaded(dir: &Path) -> State {
        State::load(dir).unwrap().expect("a state")
    }

    fn same(a: &State, b: &State) {
        let bits = |s: &State| s.done.iter().map(|(&i, x)| (i, x.to_bits())).collect::<Vec<_>>();
        assert_eq!((bits(a), a.elapsed, a.terms, a.chunk), (bits(b), b.elapsed, b.terms, b.chunk));
    }

    #[test]
    fn a_chunk_is_one_appended_record_and_reads_back_bit_for_bit() {
        let (dir, lock) = dir("store-append");
        let (mut store, mut state) = open(&dir, &lock, 100);
        let snapshot = std::fs::read(dir.join(FILE)).unwrap();
        for i in [3, 0, 1, 7] {
            let before = std::fs::metadata(dir.join(JOURNAL)).unwrap().len();
            state.elapsed = i as f64 / 8.0;
            put(&mut store, &mut state, i);
            let after = std::fs::metadata(dir.join(JOURNAL)).unwrap().len();
            assert!((35..60).contains(&(after - before)), "{before} -> {after}");
            same(&loaded(&dir), &state);
        }
        assert_eq!(std::fs::read(dir.join(FILE)).unwrap(), snapshot, "the snapshot was rewritten");
        // A chunk recorded again keeps its first sum and writes nothing.
        let len = std::fs::metadata(dir.join(JOURNAL)).unwrap().len();
        put(&mut store, &mut state, 3);
        assert_eq!(std::fs::metadata(dir.join(JOURNAL)).unwrap().len(), len);
        // A sum that is not the series' is refused, and not written.
        assert!(matches!(store.record(&mut state, 4, 1.0), Err(StateError::Implausible { .. })));
        assert_eq!(std::fs::metadata(dir.join(JOURNAL)).unwrap().len(), len);
        assert_eq!(store.written().syncs, 0, "synced before the second was up");
        // Synced once the second is up, and not again until something is appended.
        assert!(store.sync_due().is_some_and(|due| due <= Instant::now() + SYNC_EVERY));
        store.sync().unwrap();
        assert_eq!((store.written().syncs, store.sync_due()), (1, None));
        store.sync_if_due().unwrap();
        assert_eq!(store.written().syncs, 1);
        // Opened again, it goes on with the same journal.
        drop(store);
        let (mut store, mut again) = open(&dir, &lock, 100);
        same(&again, &state);
        assert_eq!(store.written().compactions, 0);
        put(&mut store, &mut again, 9);
        assert_eq!(loaded(&dir).done.len(), 5);
    }

    #[test]
    fn the_journal_is_compacted_once_it_outgrows_the_snapshot_and_bytes_stay_bounded() {
        let (dir, lock) = dir("store-compact");
        let chunks = 20_000;
        let (mut store, mut state) = open(&dir, &lock, chunks + 1);
        let mut compacted_at = Vec::new();
        for i in 0..chunks {
            let before = store.written().compactions;
            put(&mut store, &mut state, i);
            if store.written().compactions > before {
                compacted_at.push(i + 1);
            }
            // The journal never holds more than the snapshot (or the floor), plus a record.
            assert!(store.record_bytes <= bound(store.snapshot_bytes), "chunk {i}");
        }
        // Geometric: each compaction after the floor's comes once the journal has outgrown
        // a snapshot that grew by as much.
        assert!((5..=10).contains(&compacted_at.len()), "{compacted_at:?}");
        assert!(compacted_at.windows(2).skip(1).all(|w| w[1] > w[0] * 3 / 2), "{compacted_at:?}");
        let per_chunk = store.written().bytes as f64 / chunks as f64;
        assert!((50.0..200.0).contains(&per_chunk), "{per_chunk} bytes per chunk");
        same(&loaded(&dir), &state);
    }

    #[test]
    fn an_append_cut_short_is_cut_off_at_open_and_recording_goes_on() {
        let (dir, lock) = dir("store-torn");
        let (mut store, mut state) = open(&dir, &lock, 10);
        for i in 0..3 {
            put(&mut store, &mut state, i);
        }
        drop(store);
        let path = dir.join(JOURNAL);
        let whole = std::fs::read(&path).unwrap();
        // The next record, cut short at every byte.
        let mut chain = Journal::parse(&whole, &path).unwrap().chain;
        let next = journal::done_line(&mut chain, 3, sum(&state, 3), 1.0);
        for cut in 0..next.len() {
            let mut torn = whole.clone();
            torn.extend(&next.as_bytes()[..cut]);
            std::fs::write(&path, &torn).unwrap();
            same(&loaded(&dir), &state);
            let (mut store, mut again) = open(&dir, &lock, 10);
            assert_eq!(std::fs::read(&path).unwrap(), whole, "cut {cut} not cut off");
            same(&again, &state);
            put(&mut store, &mut again, 5);
            assert_eq!(loaded(&dir).done.len(), 4);
            std::fs::write(&path, &whole).unwrap();
        }
        // The whole record is a record.
        std::fs::write(&path, [whole.clone(), next.into_bytes()].concat()).unwrap();
        assert_eq!(loaded(&dir).done.len(), 4);
    }

    #[test]
    fn a_compaction_cut_short_leaves_a_stale_journal_that_is_ignored() {
        let (dir, lock) = dir("store-stale");
        let (mut store, mut state) = open(&dir, &lock, 10);
        for i in 0..4 {
            put(&mut store, &mut state, i);
        }
        // The snapshot replaced, not yet the journal: the journal follows the old one.
        let old_journal = std::fs::read(dir.join(JOURNAL)).unwrap();
        write_snapshot(&dir, &state).unwrap();
        same(&loaded(&dir), &state);
        // Damage is refused in a stale journal too.
        let mut damaged = old_journal.clone();
        let at = damaged.len() - 3;
        damaged[at] ^= 1;
        std::fs::write(dir.join(JOURNAL), &damaged).unwrap();
        assert!(matches!(State::load(&dir), Err(StateError::Corrupt { .. })));
        std::fs::write(dir.join(JOURNAL), &old_journal).unwrap();
        drop(store);
        let (store, again) = open(&dir, &lock, 10);
        same(&again, &state);
        assert_eq!(store.written().compactions, 1);
        let journal = std::fs::read(dir.join(JOURNAL)).unwrap();
        let snapshot = std::fs::read_to_string(dir.join(FILE)).unwrap();
        let follows = Journal::parse(&journal, Path::new("j")).unwrap().follows;
        assert_eq!(Some(follows), super::super::identity(&snapshot));
        // A stale journal whose header is damaged cannot be told from damage: refused.
        let mut header = old_journal;
        header[JOURNAL_MAGIC.len() + 9] ^= 1;
        std::fs::write(dir.join(JOURNAL), &header).unwrap();
        assert!(matches!(State::load(&dir), Err(StateError::Corrupt { line: 2, .. })));
    }

    #[test]
    fn a_reader_sees_a_whole_state_at_every_moment_of_the_writing() {
        let (dir, lock) = dir("store-reader");
        let chunks = 12_000;
        let (mut store, mut state) = open(&dir, &lock, chunks);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (dir, done) = (dir.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut reads, mut last) = (0, 0);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let s = State::load(&dir).unwrap().unwrap();
                    assert!(s.done.len() >= last, "went back from {last} to {}", s.done.len());
                    assert!(s.done.keys().copied().eq(0..s.done.len() as u64), "a hole");
                    last = s.done.len();
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..chunks {
            put(&mut store, &mut state, i);
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads = reader.join().unwrap();
        assert!(reads > 0 && store.written().compactions >= 4, "{reads} reads");
    }

    #[test]
    fn the_last_chunk_writes_the_result_into_the_snapshot() {
        let (dir, lock) = dir("store-done");
        let (mut store, mut state) = open(&dir, &lock, 3);
        for i in [2, 0, 1] {
            put(&mut store, &mut state, i);
        }
        let snapshot = std::fs::read_to_string(dir.join(FILE)).unwrap();
        let result = format!("\nresult {:016x} ", state.estimate().unwrap().to_bits());
        assert!(snapshot.contains(&result), "{snapshot}");
        let journal = std::fs::read(dir.join(JOURNAL)).unwrap();
        assert!(Journal::parse(&journal, Path::new("j")).unwrap().records.is_empty());
        // A stop after it writes nothing; a start after it neither.
        store.close(&state).unwrap();
        drop(store);
        let (store, again) = open(&dir, &lock, 3);
        assert_eq!((store.written(), again.complete()), (Written::default(), true));
        assert_eq!(std::fs::read_to_string(dir.join(FILE)).unwrap(), snapshot);
    }

    #[test]
    fn a_stop_compacts_a_small_state_and_records_the_time_of_a_large_one() {
        let (dir, lock) = dir("store-stop");
        let (mut store, mut state) = open(&dir, &lock, 5000);
        put(&mut store, &mut state, 0);
        state.elapsed = 2.5;
        store.close(&state).unwrap();
        assert_eq!(store.written().compactions, 2);
        assert!(std::fs::read_to_string(dir.join(FILE)).unwrap().contains("\nelapsed 2.500 "));
        for i in 1..2000 {
            put(&mut store, &mut state, i);
        }
        let compactions = store.written().compactions;
        state.elapsed = 9.75;
        store.close(&state).unwrap();
        assert_eq!(store.written().compactions, compactions, "a large state was compacted");
        assert!(store.sync_due().is_none(), "not synced at the stop");
        let journal = std::fs::read_to_string(dir.join(JOURNAL)).unwrap();
        assert!(journal.lines().last().unwrap().starts_with("elapsed 9.750 "), "{journal}");
        assert_eq!(loaded(&dir).elapsed, 9.75);
    }

    #[test]
    fn an_old_snapshot_alone_loads_and_gets_a_journal() {
        let (dir, lock) = dir("store-old");
        let mut old = State::new(5000, 1000);
        for i in [0, 3] {
            let s = sum(&old, i);
            old.record(i, s).unwrap();
        }
        std::fs::write(dir.join(FILE), old.to_text()).unwrap();
        same(&loaded(&dir), &old);
        let (mut store, mut state) = Store::open(&dir, &lock, 5000, 1000).unwrap();
        same(&state, &old);
        assert!(dir.join(JOURNAL).exists());
        put(&mut store, &mut state, 1);
        assert_eq!(loaded(&dir).done.len(), 3);
    }

    #[test]
    fn a_record_that_cannot_be_written_is_not_recorded() {
        let (dir, lock) = dir("store-unwritable");
        let (mut store, mut state) = open(&dir, &lock, 10);
        put(&mut store, &mut state, 0);
        let journal = std::fs::read(dir.join(JOURNAL)).unwrap();
        // The journal's descriptor read-only: every write fails (EBADF).
        store.journal = File::open(dir.join(JOURNAL)).unwrap();
        let s = sum(&state, 1);
        let e = store.record(&mut state, 1, s).unwrap_err();
        assert!(e.to_string().starts_with("cannot append to "), "{e}");
        assert!(!state.done.contains_key(&1), "recorded in memory only");
        assert_eq!(std::fs::read(dir.join(JOURNAL)).unwrap(), journal);
        same(&loaded(&dir), &state);
    }

    #[test]
    fn a_journal_with_another_name_is_not_written_through() {
        let (dir, lock) = dir("store-hardlink");
        let (mut store, mut state) = open(&dir, &lock, 10);
        put(&mut store, &mut state, 0);
        drop(store);
        let other = dir.with_extension("other");
        let _ = std::fs::remove_file(&other);
        std::fs::hard_link(dir.join(JOURNAL), &other).unwrap();
        let before = std::fs::read(&other).unwrap();
        let e = Store::open(&dir, &lock, 10_000, 1000).unwrap_err();
        assert!(e.to_string().contains("other hard links"), "{e}");
        assert_eq!(std::fs::read(&other).unwrap(), before);
        std::fs::remove_file(&other).unwrap();
    }
}
