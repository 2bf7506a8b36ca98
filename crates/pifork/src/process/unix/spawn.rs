//! The spawn start method: a fresh run of the current executable (`fork` + `execve`), told by
//! `PIFORK_SPAWN` which entry to run. Everything the child needs between `fork` and `execve`
//! is built before the fork, so a spawn is safe from a parent that runs other threads.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};

use super::backend::backend;
use super::child::{Child, SentinelPipe};
use crate::error::{Error, Result};
use crate::fdtable::{self, Tracked};
use crate::process::entry::{HANDSHAKE, SPAWN_ENV, SpawnSpec};
use crate::process::spec::ChildSpec;
use crate::status::Pid;
use crate::sys::{self, ExecPlan, ExecStep};
use crate::wait::remaining_ms;

/// How long a spawned child may take to reach `main_guard`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a spawned child running entry `entry` on `args`. No thread check: the child only
/// makes system calls on prepared data until it execs.
pub(crate) fn spawn(spec: &ChildSpec<'_>, entry: &str, args: &[u8]) -> Result<Child> {
    let (result_r, result_w) = sys::pipe_nonblocking_read().map_err(Error::sys("pipe"))?;
    let (result_r, result_w) = (Tracked::new(result_r), Tracked::new(result_w));
    let (args_r, args_w) = sys::pipe().map_err(Error::sys("pipe"))?;
    let (args_r, args_w) = (Tracked::new(args_r), Tracked::new(args_w));
    let sentinel = SentinelPipe::new()?;
    let hold = sentinel.child_end();
    let env_value = SpawnSpec {
        entry: entry.to_string(),
        args: args_r.as_raw_fd().into(),
        result: result_w.as_raw_fd().into(),
        hold: hold.map_or(-1, i64::from),
        daemon: spec.daemon,
        inherit: spec.inherit.iter().map(|&fd| fd.into()).collect(),
        parent: std::process::id() as i32,
        name: spec.name.to_string(),
    }
    .encode();
    let mut plan = exec_plan(&env_value);
    plan.keep(args_r.as_raw_fd());
    plan.keep(result_w.as_raw_fd());
    if let Some(hold) = hold {
        plan.keep(hold);
    }
    for &fd in spec.inherit {
        plan.keep(fd);
    }
    if let Some(cpus) = spec.cpus {
        plan.pin(cpus).map_err(Error::sys("sched_setaffinity"))?;
    }
    if spec.daemon {
        plan.die_with_parent();
    }
    // Anything buffered now would otherwise be written twice, once by each process.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let started = Instant::now();
    let child = sys::fork_exec(&plan, result_w.as_fd()).map_err(Error::sys("fork"))?;
    let pid = Pid(child.as_raw());
    drop((args_r, result_w));
    let reaper = sentinel.into_reaper(pid)?;
    log::debug!("spawned {} pid {pid} ({})", spec.name, backend().as_str());
    let mut child = Child {
        pid,
        reaper,
        result: Some(result_r),
        output: Vec::new(),
        output_done: false,
        status: None,
        started,
        serial: 0,
    };
    await_handshake(&mut child)?;
    // The guard reads the arguments right after its handshake.
    let sent = sys::write_all(args_w.as_fd(), args);
    drop(args_w);
    if let Err(errno) = sent {
        log::debug!("spawned {} pid {pid} did not take its arguments: {errno}", spec.name);
    }
    Ok(child)
}

/// The exec of the current executable: its path, `argv[0]`, and this process's environment
/// with `PIFORK_SPAWN` set to `env_value`.
fn exec_plan(env_value: &str) -> ExecPlan {
    let path = CString::new("/proc/self/exe").expect("no NUL");
    let argv0 = std::env::args_os().next().unwrap_or_else(|| "pifork".into());
    let argv = vec![CString::new(argv0.as_bytes()).unwrap_or_else(|_| path.clone())];
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != SPAWN_ENV)
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    envp.push(CString::new(format!("{SPAWN_ENV}={env_value}")).expect("no NUL"));
    ExecPlan::new(path, argv, envp)
}

/// Waits for a spawned child's first byte. Anything else — an early exit, an exec failure,
/// silence — ends the child and is an error.
fn await_handshake(child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        child.drain()?;
        if let Some(&first) = child.output.first() {
            if first == HANDSHAKE {
                child.output.remove(0);
                return Ok(());
            }
            break;
        }
        if child.output_done || child.try_wait()?.is_some() {
            break;
        }
        let timeout = remaining_ms(Some(deadline)).unwrap_or(0);
        if timeout == 0 {
            break;
        }
        let mut fds = vec![PollFd::new(child.sentinel(), PollFlags::POLLIN)];
        if let Some(result) = &child.result {
            fds.push(PollFd::new(result.as_fd(), PollFlags::POLLIN));
        }
        match sys::poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(Error::sys("poll")(errno)),
        }
    }
    let _ = child.kill();
    child.wait_until(None)?;
    match ExecStep::from_frame(&child.output) {
        Some((step, errno)) => {
            Err(Error::sys(step.call())(std::io::Error::from_raw_os_error(errno)))
        }
        None => Err(Error::NoMainGuard),
    }
}

/// In a spawned child: records the descriptors its parent handed down — its own result and
/// sentinel pipe ends, so that this process's own children do not inherit them, and the ones
/// listed with `inherit_fds`, which its entry may take with `take_inherited`.
pub(crate) fn adopt_inherited(spec: &SpawnSpec) {
    for fd in [spec.result, spec.hold] {
        if fd >= 0 {
            fdtable::track_forever(&(fd as RawFd));
        }
    }
    let inherit: Vec<RawFd> = spec.inherit.iter().map(|&fd| fd as RawFd).collect();
    fdtable::set_inherited(&inherit);
}
