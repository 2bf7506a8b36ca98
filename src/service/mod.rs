//! `pifork serve`: the long computation as a service. Pinned, daemonic workers (one per core)
//! take fixed chunks; the supervisor waits for the first to report, records its partial sum
//! durably, and hands that worker the next chunk. A worker that dies is restarted and its
//! chunks are redone (a bounded number of times). Progress survives stops, crashes and
//! reboots, and is reported to systemd.

pub mod notify;
pub mod state;
pub mod status;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::pool::{DEPTH, Event, Pool, PoolSpec, describe_late};
use notify::{Notifier, watchdog_interval};
use pifork::{SignalPipe, StartMethod, signal_name};
use state::{FILE, State, StateError, Store};

/// Where the state lives unless told otherwise and not run by systemd.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pifork";

/// How often a chunk may be retried after its worker died before the service gives up.
pub const MAX_RETRIES: u32 = 3;

/// How often STATUS is refreshed while chunks take long.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// How soon STATUS follows a finished chunk.
const STATUS_SOON: Duration = Duration::from_secs(1);

/// The journal gets a progress line at most this often, besides one per tenth of the chunks:
/// the live figure is STATUS= (`systemctl status pifork`), the log keeps the milestones.
const LOG_EVERY: Duration = Duration::from_secs(300);

/// The state directory: the flag, else systemd's `$STATE_DIRECTORY` (its first entry), else
/// [`DEFAULT_STATE_DIR`].
pub fn state_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        let dirs = std::env::var_os("STATE_DIRECTORY")?;
        let first = dirs.to_str()?.split(':').next()?.to_string();
        (!first.is_empty()).then(|| PathBuf::from(first))
    })
    .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// What `serve` is asked to do.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// N.
    pub terms: u64,
    /// Terms per chunk.
    pub chunk: u64,
    /// Worker processes.
    pub workers: usize,
    /// Where the state lives.
    pub state_dir: PathBuf,
    /// Exit once the result is recorded instead of idling until stopped.
    pub exit_when_done: bool,
    /// How workers are started.
    pub start: StartMethod,
}

/// How a `serve` run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// By SIGTERM or SIGINT (the state is flushed).
    Signal(i32),
    /// The result is recorded and `--exit-when-done` was given.
    Done,
}

/// One line of progress, for STATUS=, SIGHUP and `pifork status`.
pub fn progress_line(state: &State, rate: Option<f64>) -> String {
    let mut line = format!(
        "{}/{} chunks, {} of {} terms",
        state.done.len(),
        state.chunks(),
        state.terms_done(),
        state.terms
    );
    if let Some(rate) = rate {
        line.push_str(&format!(", {rate:.3e} terms/s"));
    }
    if let Some(estimate) = state.estimate() {
        line.push_str(&format!(", pi ~ {estimate:.15} (first {} terms)", state.prefix_terms()));
    }
    line
}

struct Service<'a> {
    cfg: &'a ServeConfig,
    state: State,
    store: Store,
    pool: Option<Pool>,
    pending: VecDeque<u64>,
    retries: BTreeMap<u64, u32>,
    notifier: Option<Notifier>,
    session: Instant,
    base_elapsed: f64,
    base_done: u64,
}

/// Runs the service until it is stopped (or done, with `--exit-when-done`).
pub fn serve(cfg: &ServeConfig, signals: &SignalPipe) -> Result<Stopped> {
    let dir = &cfg.state_dir;
    state::check_job(cfg.terms, cfg.chunk)?;
    if dir.as_os_str().is_empty() {
        return Err(StateError::EmptyDir.into());
    }
    std::fs::create_dir_all(dir).map_err(|e| state_error(dir, "create", e))?;
    // One service per directory, held until this function returns.
    let lock = state::Lock::acquire(dir)?;
    // Opening writes (a compaction, or the journal cut back and synced): it also proves the
    // directory writable before any work is done.
    let (store, state) = Store::open(dir, &lock, cfg.terms, cfg.chunk)?;
    if !state.done.is_empty() {
        log::info!(
            "pifork serve: resumed from {}: {} of {} chunks done",
            dir.join(FILE).display(),
            state.done.len(),
            state.chunks()
        );
    }
    let pending = (0..state.chunks()).filter(|i| !state.done.contains_key(i)).collect();
    let mut service = Service {
        cfg,
        base_elapsed: state.elapsed,
        base_done: state.terms_done(),
        state,
        store,
        pool: None,
        pending,
        retries: BTreeMap::new(),
        notifier: Notifier::from_env(),
        session: Instant::now(),
    };
    service.run(signals)
}

fn state_error(dir: &Path, op: &'static str, e: std::io::Error) -> Error {
    Error::State(StateError::Io { path: dir.to_path_buf(), op, source: e })
}

/// What the service's loop keeps between wake-ups: when the watchdog, STATUS= and the
/// journal are due next, how far the journal has followed the chunks, and whether the end of
/// the work was announced.
struct Schedule {
    watchdog: Option<Duration>,
    next_watchdog: Option<Instant>,
    next_status: Instant,
    next_log: Instant,
    logged_tenths: usize,
    announced_done: bool,
}

impl Schedule {
    /// The schedule from now on, the journal at `tenths` tenths of the chunks.
    fn new(tenths: usize) -> Schedule {
        let watchdog = watchdog_interval();
        let now = Instant::now();
        Schedule {
            watchdog,
            next_watchdog: watchdog.map(|w| now + w),
            next_status: now + STATUS_EVERY,
            next_log: now + LOG_EVERY,
            logged_tenths: tenths,
            announced_done: false,
        }
    }

    /// How long a wait may last: until STATUS=, the watchdog or the journal's sync (`sync`)
    /// is due.
    fn timeout(&self, sync: Option<Instant>) -> Duration {
        let deadline = self.next_watchdog.map_or(self.next_status, |w| self.next_status.min(w));
        let deadline = sync.map_or(deadline, |s| deadline.min(s));
        deadline.saturating_duration_since(Instant::now())
    }
}

impl Service<'_> {
    fn notify(&self, line: &str) {
        if let Some(n) = &self.notifier {
            n.send(line);
        }
    }

    fn rate(&self) -> Option<f64> {
        let secs = self.session.elapsed().as_secs_f64();
        let done = self.state.terms_done().saturating_sub(self.base_done);
        (secs > 0.0 && done > 0).then(|| done as f64 / secs)
    }

    fn status(&self) -> String {
        if self.state.complete() {
            format!("done: {}", progress_line(&self.state, None))
        } else {
            progress_line(&self.state, self.rate())
        }
    }

    /// Tenths of the chunks done, 0 to 10.
    fn tenths(&self) -> usize {
        10 * self.state.done.len() / (self.state.chunks() as usize).max(1)
    }

    /// Records a finished chunk: in the state, and appended to the journal.
    fn record(&mut self, chunk: u64, sum: f64) -> Result<()> {
        self.state.elapsed = self.base_elapsed + self.session.elapsed().as_secs_f64();
        Ok(self.store.record(&mut self.state, chunk, sum)?)
    }

    /// Starts the workers, then, until the service stops, announces the end once, wakes for
    /// events and handles them, and sends what is due.
    fn run(&mut self, signals: &SignalPipe) -> Result<Stopped> {
        if !self.state.complete()
            && let Some(stopped) = self.start_pool(signals)?
        {
            return Ok(stopped);
        }
        self.notify("READY=1");
        self.notify(&format!("STATUS={}", self.status()));
        let mut schedule = Schedule::new(self.tenths());
        loop {
            if self.state.complete() && !schedule.announced_done {
                schedule.announced_done = true;
                if let Some(stopped) = self.announce_done() {
                    return Ok(stopped);
                }
            }
            if let Some(stopped) = self.wake(signals, &mut schedule)? {
                return Ok(stopped);
            }
            self.send_due(&mut schedule);
        }
    }

    /// Starts the workers and hands each its first chunks. `Some` if a stop was asked for
    /// meanwhile: the service has stopped (its state saved).
    fn start_pool(&mut self, signals: &SignalPipe) -> Result<Option<Stopped>> {
        let spec = PoolSpec {
            workers: self.cfg.workers.clamp(1, self.pending.len().max(1)),
            pin: true,
            start: self.cfg.start,
            kernel: None,
        };
        // A stop asked for while thousands of workers start ends the start at once.
        let on_signal = || match signals.take() {
            Some(signal_hook::consts::SIGHUP) | None => None,
            Some(signal) => Some(Error::Interrupted { signal }),
        };
        let mut pool = match Pool::start(&spec, Some((signals.fd(), &on_signal))) {
            Err(Error::Interrupted { signal }) => return self.stop(signal).map(Some),
            started => started?,
        };
        log::info!(
            "pifork serve: {} workers on {} chunks of {} terms ({} left)",
            pool.len(),
            self.state.chunks(),
            self.cfg.chunk,
            self.pending.len()
        );
        self.top_up(&mut pool)?;
        self.pool = Some(pool);
        Ok(None)
    }

    /// Every chunk is done: the workers end, the result goes to the journal and STATUS=.
    /// `Some` if the service ends with it (`--exit-when-done`).
    fn announce_done(&mut self) -> Option<Stopped> {
        if let Some(pool) = self.pool.take() {
            pool.wind_down();
        }
        let result = self.state.estimate().unwrap_or(f64::NAN);
        log::info!(
            "pifork serve: done: {} terms, pi ~ {result:.15} (error {:+.3e})",
            self.state.terms,
            result - std::f64::consts::PI
        );
        self.notify(&format!("STATUS={}", self.status()));
        if !self.cfg.exit_when_done {
            return None;
        }
        self.notify("STOPPING=1");
        Some(Stopped::Done)
    }

    /// Waits for the workers' events and the signals until the next STATUS=, watchdog ping or
    /// sync of the journal is due, and handles what came. `Some` once the service has stopped.
    fn wake(&mut self, signals: &SignalPipe, schedule: &mut Schedule) -> Result<Option<Stopped>> {
        let timeout = schedule.timeout(self.store.sync_due());
        let mut events = match &mut self.pool {
            Some(pool) => pool.next_events(&[signals.fd()], Some(timeout))?,
            None => pifork::wait(&[signals.fd()], Some(timeout))?
                .into_iter()
                .map(Event::Ready)
                .collect(),
        };
        // Reports first and signals last, so that a stop records every finished chunk; each
        // is appended to the journal as it comes, which is synced at most once a second.
        events.sort_by_key(|e| matches!(e, Event::Ready(_)));
        let mut recorded = false;
        let outcome = self.handle(events, signals, &mut recorded);
        if outcome.is_err() {
            // Failing: what was recorded goes to disk before the error is told.
            let _ = self.store.sync();
        }
        let stopped = outcome?;
        if stopped.is_none() {
            self.store.sync_if_due()?;
        }
        if recorded && stopped.is_none() {
            self.recorded(schedule);
        }
        Ok(stopped)
    }

    /// Chunks were recorded: STATUS= follows within a second (at most once a second), the
    /// journal at every tenth of the chunks.
    fn recorded(&self, schedule: &mut Schedule) {
        schedule.next_status = schedule.next_status.min(Instant::now() + STATUS_SOON);
        let tenths = self.tenths();
        if tenths > schedule.logged_tenths && !self.state.complete() {
            schedule.logged_tenths = tenths;
            log::info!("pifork serve: {}", self.status());
            schedule.next_log = Instant::now() + LOG_EVERY;
        }
    }

    /// Sends what is due: the watchdog's ping, STATUS=, the journal's progress line.
    fn send_due(&self, schedule: &mut Schedule) {
        let now = Instant::now();
        if let (Some(w), Some(at)) = (schedule.watchdog, schedule.next_watchdog)
            && now >= at
        {
            // Fed only while the work progresses: not while a worker is late with its
            // chunk (stopped, hung), so that systemd restarts a service stuck that way.
            if !self.pool.as_ref().is_some_and(Pool::is_late) {
                self.notify("WATCHDOG=1");
            }
            schedule.next_watchdog = Some(now + w);
        }
        if now >= schedule.next_status {
            self.notify(&format!("STATUS={}", self.status()));
            schedule.next_status = now + STATUS_EVERY;
        }
        if now >= schedule.next_log && !self.state.complete() {
            log::info!("pifork serve: {}", self.status());
            schedule.next_log = now + LOG_EVERY;
        }
    }

    /// Handles one wake-up's events: reports are recorded (`recorded` says if any was),
    /// dead and stuck workers replaced, signals obeyed. `Some` once the service has stopped
    /// (its state saved).
    fn handle(
        &mut self,
        events: Vec<Event>,
        signals: &SignalPipe,
        recorded: &mut bool,
    ) -> Result<Option<Stopped>> {
        for event in events {
            match event {
                Event::Ready(_) => {
                    if let Some(stopped) = self.obey(signals) {
                        return stopped.map(Some);
                    }
                }
                Event::Reported { chunk, sum, .. } => {
                    self.record(chunk as u64, sum)?;
                    *recorded = true;
                    self.with_pool(|s, pool| s.top_up(pool)).transpose()?;
                }
                Event::Ended { worker, lost, error } => {
                    // A signal sent to the whole process group (Ctrl-C, `systemctl kill`) also
                    // kills workers: the stop it asks for comes first.
                    if let Some(stopped) = self.obey(signals) {
                        return stopped.map(Some);
                    }
                    self.restart(worker, lost, error)?;
                }
                Event::Failed { chunk, error } => self.retry(&[chunk], error)?,
                Event::Late { worker, pid, chunk, waited, expected } => log::warn!(
                    "pifork serve: {}",
                    describe_late(worker, pid, chunk, waited, expected)
                ),
            }
        }
        Ok(None)
    }

    /// The signal received since the last look, if any: SIGHUP logs the status; any other
    /// stops the service (`Some`, with how the stop went).
    fn obey(&mut self, signals: &SignalPipe) -> Option<Result<Stopped>> {
        match signals.take()? {
            signal_hook::consts::SIGHUP => {
                log::info!("pifork serve: status: {}", self.status());
                None
            }
            signal => Some(self.stop(signal)),
        }
    }

    /// Runs `f` with the pool taken out of `self` (there is one while chunks are pending).
    fn with_pool<R>(&mut self, f: impl FnOnce(&mut Self, &mut Pool) -> R) -> Option<R> {
        let mut pool = self.pool.take()?;
        let out = f(self, &mut pool);
        self.pool = Some(pool);
        Some(out)
    }

    /// Hands out pending chunks until [`DEPTH`] per worker are out.
    fn top_up(&mut self, pool: &mut Pool) -> Result<()> {
        while pool.outstanding() < DEPTH * pool.len() {
            let Some(chunk) = self.pending.pop_front() else { break };
            pool.assign(chunk as usize, self.state.bounds(chunk))?;
        }
        Ok(())
    }

    /// A worker died: its chunk goes back to the front of the queue (at most [`MAX_RETRIES`]
    /// times each); the pool has started a new worker in its place.
    fn restart(&mut self, _worker: usize, lost: Vec<usize>, err: Error) -> Result<()> {
        log::error!("pifork serve: {err}; restarting it");
        self.retry(&lost, err)
    }

    /// Chunks `lost` failed for `err`: back to the front of the queue, at most
    /// [`MAX_RETRIES`] times each.
    fn retry(&mut self, lost: &[usize], err: Error) -> Result<()> {
        if let Error::ChunkPanicked { .. } = err {
            log::error!("pifork serve: {err}; retrying it");
        }
        for &chunk in lost.iter().rev() {
            let chunk = chunk as u64;
            let tries = self.retries.entry(chunk).or_insert(0);
            *tries += 1;
            if *tries > MAX_RETRIES {
                return Err(Error::ServiceFailed { chunk, tries: *tries, last: Box::new(err) });
            }
            self.pending.push_front(chunk);
        }
        self.with_pool(|s, pool| s.top_up(pool)).unwrap_or(Ok(()))
    }

    /// SIGTERM/SIGINT: stop handing out work, end the workers, flush the state.
    fn stop(&mut self, signal: i32) -> Result<Stopped> {
        self.notify("STOPPING=1");
        log::info!(
            "pifork serve: stopping on {}: {}",
            signal_name(signal).unwrap_or("a signal"),
            self.status()
        );
        drop(self.pool.take()); // terminates and reaps the workers
        self.state.elapsed = self.base_elapsed + self.session.elapsed().as_secs_f64();
        self.store.close(&self.state)?;
        Ok(Stopped::Signal(signal))
    }
}
