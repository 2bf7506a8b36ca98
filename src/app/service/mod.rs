//! `pifork serve`: the long computation as a service. Pinned, daemonic workers (one per core)
//! take fixed chunks; the supervisor waits for the first to report, records its partial sum
//! durably, and hands that worker the next chunk. A worker that dies is restarted and its
//! chunks are redone (a bounded number of times). Progress survives stops, crashes and
//! reboots, and is reported to systemd.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::engine::{Crew, PiJob, Worker};
use crate::error::{Error, Result};
use crate::notify::{Notifier, watchdog_interval};
use crate::process::{self, StartMethod};
use crate::signals::SignalPipe;
use crate::state::State;
use crate::wait::wait;

/// Where the state lives unless told otherwise and not run by systemd.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pifork";

/// How often a chunk may be retried after its worker died before the service gives up.
pub const MAX_RETRIES: u32 = 3;

/// How often STATUS is refreshed while chunks take long.
const STATUS_EVERY: Duration = Duration::from_secs(5);

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
    job: PiJob,
    cpus: Vec<usize>,
    crew: Crew,
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
    std::fs::create_dir_all(dir).map_err(|e| state_error(dir, "create", e))?;
    let state = State::load_for(dir, cfg.terms, cfg.chunk).map_err(Error::State)?;
    // Writing at once also proves the directory is writable before any work is done.
    state.save(dir).map_err(Error::State)?;
    if !state.done.is_empty() {
        log::warn!(
            "pifork serve: resumed from {}: {} of {} chunks done",
            dir.join(crate::state::FILE).display(),
            state.done.len(),
            state.chunks()
        );
    }
    let pending = (0..state.chunks()).filter(|i| !state.done.contains_key(i)).collect();
    let mut job = PiJob::new(cfg.terms, cfg.workers);
    job.start = cfg.start;
    let mut service = Service {
        cfg,
        base_elapsed: state.elapsed,
        base_done: state.terms_done(),
        state,
        job,
        cpus: process::available_cpus(),
        crew: Crew(Vec::new()),
        pending,
        retries: BTreeMap::new(),
        notifier: Notifier::from_env(),
        session: Instant::now(),
    };
    service.run(signals)
}

fn state_error(dir: &Path, op: &'static str, e: std::io::Error) -> Error {
    Error::State(crate::state::StateError::Io {
        path: dir.to_path_buf(),
        op,
        reason: e.to_string(),
    })
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

    fn save(&mut self) -> Result<()> {
        self.state.elapsed = self.base_elapsed + self.session.elapsed().as_secs_f64();
        self.state.save(&self.cfg.state_dir).map_err(Error::State)
    }

    fn run(&mut self, signals: &SignalPipe) -> Result<Stopped> {
        if !self.state.complete() {
            let workers = self.cfg.workers.clamp(1, self.pending.len().max(1));
            for index in 0..workers {
                let worker = self.start_worker(index)?;
                self.crew.0.push(worker);
            }
            log::info!(
                "pifork serve: {} workers on {} chunks of {} terms ({} left)",
                self.crew.0.len(),
                self.state.chunks(),
                self.cfg.chunk,
                self.pending.len()
            );
            for _ in 0..2 {
                for index in 0..self.crew.0.len() {
                    self.hand_out(index)?;
                }
            }
        }
        self.notify("READY=1");
        self.notify(&format!("STATUS={}", self.status()));
        let watchdog = watchdog_interval();
        let mut next_watchdog = watchdog.map(|w| Instant::now() + w);
        let mut next_status = Instant::now() + STATUS_EVERY;
        let mut announced_done = false;
        loop {
            if self.state.complete() && !announced_done {
                announced_done = true;
                self.finish_workers();
                let result = self.state.estimate().unwrap_or(f64::NAN);
                log::warn!(
                    "pifork serve: done: {} terms, pi ~ {result:.15} (error {:+.3e})",
                    self.state.terms,
                    result - std::f64::consts::PI
                );
                self.notify(&format!("STATUS={}", self.status()));
                if self.cfg.exit_when_done {
                    self.notify("STOPPING=1");
                    return Ok(Stopped::Done);
                }
            }
            let now = Instant::now();
            let mut deadline = next_status;
            if let Some(w) = next_watchdog {
                deadline = deadline.min(w);
            }
            let timeout = deadline.saturating_duration_since(now);
            // Workers holding chunks: their results first, then their sentinels, then signals.
            let active: Vec<usize> =
                (0..self.crew.0.len()).filter(|&i| !self.crew.0[i].in_flight.is_empty()).collect();
            let ready = {
                let mut fds: Vec<BorrowedFd<'_>> =
                    active.iter().map(|&i| self.crew.0[i].results.as_fd()).collect();
                for &i in &active {
                    fds.push(self.crew.0[i].process.sentinel()?);
                }
                fds.push(signals.fd());
                wait(&fds, Some(timeout))?
            };
            let n = active.len();
            if ready.contains(&(2 * n)) {
                match signals.take() {
                    Some(signal_hook::consts::SIGHUP) => {
                        log::warn!("pifork serve: status: {}", self.status());
                    }
                    Some(sig) => return self.stop(sig),
                    None => {}
                }
            }
            for &k in ready.iter().filter(|&&k| k < n) {
                self.take_result(active[k])?;
            }
            for &k in ready.iter().filter(|&&k| k >= n && k < 2 * n) {
                let index = active[k - n];
                // A worker that reported everything it held may end; one holding chunks may not.
                if !self.crew.0[index].in_flight.is_empty()
                    && !self.crew.0[index].process.is_alive()?
                {
                    self.restart(index)?;
                }
            }
            let now = Instant::now();
            if let (Some(w), Some(at)) = (watchdog, next_watchdog)
                && now >= at
            {
                self.notify("WATCHDOG=1");
                next_watchdog = Some(now + w);
            }
            if now >= next_status {
                self.notify(&format!("STATUS={}", self.status()));
                log::info!("pifork serve: {}", self.status());
                next_status = now + STATUS_EVERY;
            }
        }
    }

    fn start_worker(&self, index: usize) -> Result<Worker> {
        let pinned = self.cpus.get(index % self.cpus.len().max(1)).copied();
        Worker::start(index, pinned, &self.job)
    }

    /// Gives worker `index` the next pending chunk, if any.
    fn hand_out(&mut self, index: usize) -> Result<()> {
        let Some(chunk) = self.pending.pop_front() else { return Ok(()) };
        let bounds = self.state.bounds(chunk);
        let w = &mut self.crew.0[index];
        let sent = w.tasks.as_ref().map(|t| t.send(&bounds));
        w.in_flight.push_back(chunk as usize);
        if !matches!(sent, Some(Ok(()))) {
            // Its death shows on the sentinel; the chunk is redone then.
            log::debug!("worker-{index} did not take chunk {chunk}");
        }
        Ok(())
    }

    fn take_result(&mut self, index: usize) -> Result<()> {
        let w = &mut self.crew.0[index];
        let Ok(Some((sum, _ns))) = w.results.recv() else { return Ok(()) };
        let Some(chunk) = w.in_flight.pop_front() else { return Ok(()) };
        self.state.done.insert(chunk as u64, sum);
        self.save()?;
        log::debug!("worker-{index} finished chunk {chunk}");
        self.hand_out(index)
    }

    /// A worker died: its chunks go back to the front of the queue (at most [`MAX_RETRIES`]
    /// times each) and a new worker takes its place.
    fn restart(&mut self, index: usize) -> Result<()> {
        let w = &mut self.crew.0[index];
        let err = w.died(index);
        log::error!("pifork serve: {err}; restarting it");
        let lost: Vec<u64> = w.in_flight.drain(..).map(|c| c as u64).collect();
        for &chunk in lost.iter().rev() {
            let tries = self.retries.entry(chunk).or_insert(0);
            *tries += 1;
            if *tries > MAX_RETRIES {
                return Err(Error::ServiceFailed { chunk, tries: *tries, last: Box::new(err) });
            }
            self.pending.push_front(chunk);
        }
        let fresh = self.start_worker(index)?;
        self.crew.0[index] = fresh;
        for _ in 0..2 {
            self.hand_out(index)?;
        }
        Ok(())
    }

    /// All chunks are done: close the task channels and reap the workers.
    fn finish_workers(&mut self) {
        for w in &mut self.crew.0 {
            w.tasks = None;
        }
        for w in &mut self.crew.0 {
            let _ = w.process.join_timeout(Duration::from_secs(2));
        }
        self.crew.0.clear();
    }

    /// SIGTERM/SIGINT: stop handing out work, end the workers, flush the state.
    fn stop(&mut self, signal: i32) -> Result<Stopped> {
        self.notify("STOPPING=1");
        log::warn!(
            "pifork serve: stopping on {}: {}",
            process::signal_name(signal).unwrap_or("a signal"),
            self.status()
        );
        for w in &mut self.crew.0 {
            let _ = w.process.terminate();
        }
        self.crew.0.clear(); // reaps them
        self.save()?;
        Ok(Stopped::Signal(signal))
    }
}
