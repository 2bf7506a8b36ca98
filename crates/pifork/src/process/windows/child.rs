//! A spawned child on Windows as its parent sees it: created suspended, put in the daemon job,
//! pinned, resumed; its process handle is the sentinel; a thread reads its result pipe.

use super::backend::backend;
use super::command::{affinity_mask, environment_block, push_quoted};
use crate::error::{Error, Result};
use crate::process::entry::{HANDSHAKE, SpawnSpec};
use crate::process::spec::ChildSpec;
use crate::status::{ExitCode, Pid, StartMethod};
use crate::sys;
use crate::wait::{remaining_ms, timeout_ms};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, OwnedHandle, RawHandle};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// The exit code `terminate()` gives (read back as `-SIGTERM`).
const TERMINATE_CODE: u32 = 0x1_0000 | 15;

/// The exit code `kill()` gives (read back as `-SIGKILL`).
const KILL_CODE: u32 = 0x1_0000 | 9;

/// How long a spawned child may take to reach `main_guard`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the result pipe may stay open after its child ended (a grandchild that somehow
/// holds a copy keeps it open; the child's own bytes are all there by then).
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// The pipes' buffer size hint.
const PIPE_BUFFER: u32 = 64 * 1024;

/// A started child as the parent sees it.
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    process: OwnedHandle,
    /// Chunks read from the result pipe by the child's reader thread; `None` once it hit the
    /// end of the pipe.
    chunks: Option<Receiver<Vec<u8>>>,
    output: Vec<u8>,
    status: Option<ExitCode>,
}

/// The process-wide job that daemonic children join. Its handle is never closed: it closes
/// when this process ends, and the system then kills every process in the job.
fn daemon_job() -> Result<BorrowedHandle<'static>> {
    static JOB: OnceLock<Result<OwnedHandle>> = OnceLock::new();
    match JOB.get_or_init(|| sys::kill_on_close_job().map_err(Error::sys("CreateJobObjectW"))) {
        Ok(job) => Ok(job.as_handle()),
        Err(e) => Err(e.clone()),
    }
}

/// Starts the thread that reads the child's result pipe to its end, passing the bytes on as
/// they come.
fn start_reader(mut pipe: File) -> Result<Receiver<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("pifork-result".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut buf = vec![0u8; PIPE_BUFFER as usize];
            // A broken pipe (every writer gone) reads as the end.
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        })
        .map_err(Error::sys("CreateThread"))?;
    Ok(rx)
}

impl Child {
    /// The fork start method does not exist on Windows.
    pub(crate) fn start_fork<B: FnOnce(&mut Vec<u8>)>(
        _spec: &ChildSpec<'_>,
        _body: impl FnOnce() -> Result<B>,
    ) -> Result<Child> {
        Err(Error::Unsupported { method: StartMethod::Fork })
    }

    /// Neither does the forkserver start method.
    pub(crate) fn start_forkserver(
        _spec: &ChildSpec<'_>,
        _entry: &str,
        _args: &[u8],
    ) -> Result<Child> {
        Err(Error::Unsupported { method: StartMethod::Forkserver })
    }

    /// The spawn start method: runs the current executable again, suspended, with
    /// `PIFORK_SPAWN` naming the entry and the two inherited pipe handles; puts it in the
    /// daemon job and pins it if asked; lets it run; waits for its guard's handshake and sends
    /// the arguments.
    pub(crate) fn spawn(spec: &ChildSpec<'_>, entry: &str, args: &[u8]) -> Result<Child> {
        let mask = spec.cpus.map(affinity_mask).transpose()?;
        let job = if spec.daemon { Some(daemon_job()?) } else { None };
        let (args_r, args_w) = sys::pipe(PIPE_BUFFER).map_err(Error::sys("CreatePipe"))?;
        let (result_r, result_w) = sys::pipe(PIPE_BUFFER).map_err(Error::sys("CreatePipe"))?;
        let env_value = SpawnSpec {
            entry: entry.to_string(),
            args: sys::handle_value(args_r.as_raw_handle()),
            result: sys::handle_value(result_w.as_raw_handle()),
            hold: -1,
            daemon: spec.daemon,
            inherit: spec.inherit.iter().map(|&h| sys::handle_value(h)).collect(),
            parent: std::process::id() as i32,
            name: spec.name.to_string(),
        }
        .encode();
        let environment = environment_block(&env_value);
        let application = sys::current_exe().map_err(Error::sys("GetModuleFileNameW"))?;
        let mut command_line = Vec::new();
        let exe = String::from_utf16_lossy(&application[..application.len() - 1]);
        push_quoted(&mut command_line, OsStr::new(&exe));
        command_line.push(0);

        // The child's standard streams: inheritable copies of ours.
        let stdio_copies = [
            std::io::stdin().as_raw_handle(),
            std::io::stdout().as_raw_handle(),
            std::io::stderr().as_raw_handle(),
        ]
        .map(|h| sys::duplicate_inheritable(h).map_err(Error::sys("DuplicateHandle")));
        let mut stdio = [std::ptr::null_mut(); 3];
        let mut copies = Vec::new();
        for (slot, copy) in stdio.iter_mut().zip(stdio_copies) {
            if let Some(copy) = copy? {
                *slot = copy.as_raw_handle();
                copies.push(copy);
            }
        }
        let mut inherit: Vec<RawHandle> = vec![args_r.as_raw_handle(), result_w.as_raw_handle()];
        inherit.extend(stdio.iter().copied().filter(|h| !h.is_null()));
        for &h in spec.inherit {
            if !inherit.contains(&h) {
                inherit.push(h);
            }
        }
        for &h in &inherit {
            sys::set_inheritable(h, true).map_err(Error::sys("SetHandleInformation"))?;
        }
        let created = sys::create_process(sys::Command {
            application: &application,
            command_line: &mut command_line,
            environment: &environment,
            stdio,
            inherit: &inherit,
            suspended: true,
        })
        .map_err(Error::sys("CreateProcessW"))?;
        // The child has its copies; the parent keeps only its own ends.
        drop((args_r, result_w, copies));

        let mut child = Child {
            pid: Pid(created.pid as i32),
            process: created.process,
            chunks: None,
            output: Vec::new(),
            status: None,
        };
        let setup = (|| {
            child.chunks = Some(start_reader(File::from(result_r))?);
            if let Some(job) = job {
                sys::assign_to_job(job, child.process.as_handle())
                    .map_err(Error::sys("AssignProcessToJobObject"))?;
            }
            if let Some(mask) = mask {
                sys::set_process_affinity(child.process.as_handle(), mask)
                    .map_err(Error::sys("SetProcessAffinityMask"))?;
            }
            sys::resume_thread(created.thread.as_handle()).map_err(Error::sys("ResumeThread"))
        })();
        if let Err(e) = setup {
            let _ = child.kill();
            let _ = child.wait_until(None);
            return Err(e);
        }
        drop(created.thread);
        log::debug!(
            "spawned {} pid {} ({}{})",
            spec.name,
            child.pid,
            backend().as_str(),
            if spec.daemon { ", daemon" } else { "" }
        );
        child.await_handshake()?;
        // The guard reads the arguments right after its handshake, to the end of the pipe.
        let mut args_w = File::from(args_w);
        if let Err(e) = args_w.write_all(args) {
            log::debug!("spawned {} pid {} did not take its arguments: {e}", spec.name, child.pid);
        }
        drop(args_w);
        Ok(child)
    }

    /// Waits for a spawned child's first byte. Anything else — an early exit, silence — ends
    /// the child and is an error.
    fn await_handshake(&mut self) -> Result<()> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        while self.output.is_empty() {
            let Some(chunks) = &self.chunks else { break };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match chunks.recv_timeout(left) {
                Ok(bytes) => self.output.extend_from_slice(&bytes),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => self.chunks = None,
            }
        }
        if self.output.first() == Some(&HANDSHAKE) {
            self.output.remove(0);
            return Ok(());
        }
        let _ = self.kill();
        self.wait_until(None)?;
        Err(Error::NoMainGuard)
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// The sentinel: the process handle, signaled once the child has ended.
    pub(crate) fn sentinel(&self) -> BorrowedHandle<'_> {
        self.process.as_handle()
    }

    /// The bytes the child sent, complete once it has ended.
    pub(crate) fn output(&self) -> &[u8] {
        &self.output
    }

    /// The exit status once the child has ended (and that was seen).
    pub(crate) fn status(&self) -> Option<ExitCode> {
        self.status
    }

    /// Takes whatever the reader thread has passed on so far, without blocking.
    fn drain(&mut self) {
        while let Some(chunks) = &self.chunks {
            match chunks.try_recv() {
                Ok(bytes) => self.output.extend_from_slice(&bytes),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.chunks = None,
            }
        }
    }

    /// After the child ended: everything it wrote is in the pipe; takes it all.
    fn drain_to_end(&mut self) {
        while let Some(chunks) = &self.chunks {
            match chunks.recv_timeout(OUTPUT_GRACE) {
                Ok(bytes) => self.output.extend_from_slice(&bytes),
                Err(RecvTimeoutError::Disconnected) => self.chunks = None,
                Err(RecvTimeoutError::Timeout) => {
                    log::warn!(
                        "pid {} ended but its result pipe is still open elsewhere; \
                         keeping the {} bytes read",
                        self.pid,
                        self.output.len()
                    );
                    self.chunks = None;
                }
            }
        }
    }

    /// Non-blocking: the exit code if the child has ended, else `None`.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitCode>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        self.drain();
        if !sys::wait_one(self.process.as_handle(), 0).map_err(Error::sys("WaitForSingleObject"))? {
            return Ok(None);
        }
        let code =
            sys::exit_code(self.process.as_handle()).map_err(Error::sys("GetExitCodeProcess"))?;
        let status = match code {
            TERMINATE_CODE => ExitCode::Signaled(15),
            KILL_CODE => ExitCode::Signaled(9),
            // NTSTATUS codes of crashes (0xC0000005...) come out negative, as `i32`.
            code => ExitCode::Exited(code as i32),
        };
        self.drain_to_end();
        log::debug!("pid {} ended with exit code {status}", self.pid);
        self.status = Some(status);
        Ok(self.status)
    }

    /// Waits until the child ends or `deadline` passes (its output is read meanwhile by its
    /// reader thread).
    pub(crate) fn wait_until(&mut self, deadline: Option<Instant>) -> Result<Option<ExitCode>> {
        loop {
            if let Some(code) = self.try_wait()? {
                return Ok(Some(code));
            }
            if remaining_ms(deadline) == Some(0) {
                return Ok(None);
            }
            sys::wait_one(self.process.as_handle(), timeout_ms(deadline))
                .map_err(Error::sys("WaitForSingleObject"))?;
        }
    }

    /// `TerminateProcess`, read back as `-SIGTERM`.
    /// Not listed anywhere: Windows keeps no list of live children.
    pub(crate) fn register(&mut self, _name: &str) {}

    /// SIGTERM (15) and SIGKILL (9) are `terminate()` and `kill()`; no other signal exists.
    pub(crate) fn send_signal(&self, signal: i32) -> Result<()> {
        match signal {
            15 => self.terminate(),
            9 => self.kill(),
            _ => Err(Error::Unavailable { what: "signals other than SIGTERM and SIGKILL" }),
        }
    }

    pub(crate) fn terminate(&self) -> Result<()> {
        self.end(TERMINATE_CODE)
    }

    /// `TerminateProcess`, read back as `-SIGKILL`.
    pub(crate) fn kill(&self) -> Result<()> {
        self.end(KILL_CODE)
    }

    /// Ends the child with exit code `code` unless it has already ended (then nothing happens,
    /// as with a signal to a reaped process on Linux).
    fn end(&self, code: u32) -> Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        match sys::terminate(self.process.as_handle(), code) {
            Ok(()) => {
                log::debug!("terminated pid {} with exit code {code:#x}", self.pid);
                Ok(())
            }
            // Ending a process that has already ended fails (access denied): nothing to do.
            Err(_) if sys::wait_one(self.process.as_handle(), 0).unwrap_or(false) => Ok(()),
            Err(e) => Err(Error::sys("TerminateProcess")(e)),
        }
    }
}
