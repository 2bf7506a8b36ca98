//! Waiting on several processes: the first to end, all of them, and `Supervisor`, a scope that
//! owns several processes and ends them the CPython way.

use std::time::Duration;

use super::lifecycle::Process;
use crate::error::Result;
use crate::message::Message;
use crate::wait::{deadline_after, wait};

/// Waits until the first of `procs` has ended or `timeout` passes; returns its index
/// (the lowest if several ended), or `None` on timeout. Unstarted processes are an error.
pub fn wait_first<T: Message>(
    procs: &[Process<T>],
    timeout: Option<Duration>,
) -> Result<Option<usize>> {
    let sentinels = procs.iter().map(Process::sentinel).collect::<Result<Vec<_>>>()?;
    Ok(wait(&sentinels, timeout)?.first().copied())
}

/// Joins all of `procs` within one overall `timeout`; true if all have ended.
pub fn wait_all<T: Message>(procs: &mut [Process<T>], timeout: Option<Duration>) -> Result<bool> {
    let deadline = deadline_after(timeout);
    for p in procs.iter_mut() {
        if !p.join_until(deadline)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A scope owning several processes; when it ends (drop or [`Supervisor::shutdown`]),
/// daemonic children are terminated and non-daemonic ones joined, as CPython does at exit.
#[derive(Debug)]
pub struct Supervisor<T: Message = ()> {
    procs: Vec<Process<T>>,
    reported: Vec<bool>,
}

impl<T: Message> Default for Supervisor<T> {
    fn default() -> Self {
        Supervisor { procs: Vec::new(), reported: Vec::new() }
    }
}

impl<T: Message> Supervisor<T> {
    /// An empty supervisor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `process` and takes ownership of it; returns its index.
    pub fn start(&mut self, mut process: Process<T>) -> Result<usize> {
        process.start()?;
        self.procs.push(process);
        self.reported.push(false);
        Ok(self.procs.len() - 1)
    }

    /// The processes, in start order.
    pub fn processes(&self) -> &[Process<T>] {
        &self.procs
    }

    /// The processes, mutably.
    pub fn processes_mut(&mut self) -> &mut [Process<T>] {
        &mut self.procs
    }

    /// Waits for the next process to end and returns its index: each process is reported once,
    /// in the order they end (whether or not it ended before this call). `None` on timeout or
    /// once every process has been reported.
    pub fn wait_first(&mut self, timeout: Option<Duration>) -> Result<Option<usize>> {
        let pending: Vec<usize> = (0..self.procs.len()).filter(|&i| !self.reported[i]).collect();
        if pending.is_empty() {
            return Ok(None);
        }
        let sentinels =
            pending.iter().map(|&i| self.procs[i].sentinel()).collect::<Result<Vec<_>>>()?;
        let Some(&k) = wait(&sentinels, timeout)?.first() else {
            return Ok(None);
        };
        self.reported[pending[k]] = true;
        Ok(Some(pending[k]))
    }

    /// Sends SIGTERM to every running process.
    pub fn terminate_all(&mut self) -> Result<()> {
        self.procs.iter_mut().try_for_each(|p| p.terminate())
    }

    /// Ends the scope now: terminates daemonic children, joins the others, reaps all.
    pub fn shutdown(&mut self) {
        for p in &mut self.procs {
            if p.is_daemon() {
                let _ = p.terminate();
            }
        }
        for p in &mut self.procs {
            p.finish();
        }
    }
}

impl<T: Message> Drop for Supervisor<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
