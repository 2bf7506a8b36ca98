//! [`Tasks`]: tasks submitted one at a time to a [`Pool`] and taken back as they finish, each
//! with its index (a completion queue, as Java's `ExecutorCompletionService`; in CPython,
//! `as_completed` over submitted futures). Its wait can watch the caller's own descriptors
//! too (a signal's self-pipe), and it tells which tasks run where and since when, so that a
//! caller can keep its own policy on late or stuck workers ([`Pool::kill_worker`]).

use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::api::{Handle, Pool, lock};
use super::error::{PoolError, PoolResult};
use super::func::Func;
use super::store::Flat;
use crate::message::Message;
use crate::status::Pid;
use crate::wait::deadline_after;

/// A task a worker is running now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// The task's index (the order it was submitted in, from 0).
    pub index: usize,
    /// The worker's pid.
    pub pid: Pid,
    /// Since when the worker has been on it (it was handed to an idle worker, or the
    /// worker's previous task finished).
    pub since: Instant,
}

/// What [`Tasks::next_with`] found first.
#[derive(Debug)]
pub enum Next<R> {
    /// Task `index` finished with this outcome.
    Done(usize, PoolResult<R>),
    /// These of the extra descriptors are readable (their positions in the slice given).
    Ready(Vec<usize>),
    /// The timeout passed first.
    Timeout,
    /// Nothing to wait for: every submitted task was taken, and no descriptor was given.
    Idle,
}

/// Tasks of one function, submitted one at a time and taken back in the order they finish
/// (see [`Pool::tasks`]). Dropping it lets the pool finish what was submitted.
pub struct Tasks<T, R> {
    handle: Handle,
    submitted: usize,
    taken: usize,
    _t: PhantomData<fn(T) -> R>,
}

impl Pool {
    /// A [`Tasks`] queue running `f` (a `fn` item or a closure, as for [`Pool::map`]).
    pub fn tasks<T, R, F>(&self, f: F) -> PoolResult<Tasks<T, R>>
    where
        T: Message + 'static,
        R: Message + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.tasks_func(Func::new(f))
    }

    /// A [`Tasks`] queue running a [`Func`].
    pub fn tasks_func<T, R>(&self, f: Func<T, R>) -> PoolResult<Tasks<T, R>>
    where
        T: Message + 'static,
        R: Message + 'static,
    {
        let job = self.submit(&f, Flat::new(), 1, false, true, None)?;
        Ok(Tasks {
            handle: Handle { shared: self.shared.clone(), job },
            submitted: 0,
            taken: 0,
            _t: PhantomData,
        })
    }
}

impl<T: Message, R: Message> Tasks<T, R> {
    /// Submits a task; its index (0, 1, 2, ... in submission order). It starts at once if a
    /// worker is free. [`PoolError::NotRunning`] once the pool is closed or terminated.
    pub fn submit(&mut self, arg: &T) -> PoolResult<usize> {
        let callbacks = {
            let mut inner = lock(&self.handle.shared);
            if inner.state != super::core::State::Running {
                return Err(PoolError::NotRunning);
            }
            let mut args = Flat::new();
            args.push(arg);
            inner.extend_job(self.handle.job, args, 1);
            // Hand it out now; a failure shows again at the next wait.
            let _ = inner.step(Some(Instant::now()));
            inner.take_callbacks()
        };
        for cb in callbacks {
            cb();
        }
        self.submitted += 1;
        Ok(self.submitted - 1)
    }

    /// Tasks submitted and not yet taken back.
    pub fn pending(&self) -> usize {
        self.submitted - self.taken
    }

    /// The tasks that workers are running now.
    pub fn running(&self) -> Vec<Running> {
        lock(&self.handle.shared)
            .running(self.handle.job)
            .into_iter()
            .map(|(index, pid, since)| Running { index: index as usize, pid, since })
            .collect()
    }

    /// The next task to finish, waiting up to `timeout` (`None`: as long as it takes):
    /// `Ok(None)` when none is pending, [`PoolError::Timeout`] past it.
    pub fn next_timeout(
        &mut self,
        timeout: Option<Duration>,
    ) -> PoolResult<Option<(usize, PoolResult<R>)>> {
        match self.next_with(&[], timeout)? {
            Next::Done(index, outcome) => Ok(Some((index, outcome))),
            Next::Idle => Ok(None),
            Next::Timeout | Next::Ready(_) => Err(PoolError::Timeout),
        }
    }

    /// The first of: a task finishing, one of `extra` becoming readable, `timeout` passing.
    /// Finished tasks come before readable descriptors, which are polled level-triggered (one
    /// still readable is reported again at the next call). The pool works while this waits.
    pub fn next_with(
        &mut self,
        extra: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> PoolResult<Next<R>> {
        let deadline = deadline_after(timeout);
        let shared = self.handle.shared.clone();
        loop {
            let (found, ready, callbacks, err) = {
                let mut inner = lock(&shared);
                let mut found = self.take(&mut inner);
                let (mut ready, mut err) = (Vec::new(), None);
                let expired = deadline.is_some_and(|d| Instant::now() >= d);
                if found.is_none() && !expired && (self.pending() > 0 || !extra.is_empty()) {
                    if inner.state == super::core::State::Terminated && extra.is_empty() {
                        err = Some(PoolError::Terminated);
                    } else {
                        match inner.step_with(deadline, extra) {
                            Ok(r) => ready = r,
                            Err(e) => err = Some(e),
                        }
                        found = self.take(&mut inner);
                    }
                }
                (found, ready, inner.take_callbacks(), err)
            };
            for cb in callbacks {
                cb();
            }
            if let Some(next) = found {
                return Ok(next);
            }
            if let Some(e) = err {
                return Err(e);
            }
            if !ready.is_empty() {
                return Ok(Next::Ready(ready));
            }
            if self.pending() == 0 && extra.is_empty() {
                return Ok(Next::Idle);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Next::Timeout);
            }
        }
    }

    /// A finished task's outcome, if one is waiting.
    fn take(&mut self, inner: &mut super::core::Inner) -> Option<Next<R>> {
        let job = inner.jobs.get_mut(&self.handle.job)?;
        let idx = job.finished.pop_front()?;
        // Taken: only a marker stays, so the bytes are freed.
        let out = job.outcomes.take(idx as usize).expect("a finished task has its outcome");
        self.taken += 1;
        Some(Next::Done(idx as usize, out))
    }
}

impl<T, R> Drop for Tasks<T, R> {
    fn drop(&mut self) {
        // No more will come: the pool may close and join once what was submitted is done.
        lock(&self.handle.shared).finish_input(self.handle.job);
    }
}
