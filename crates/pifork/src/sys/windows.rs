//! Thin wrappers over the Win32 calls pifork's spawn backend needs, one per call, each
//! returning `io::Result` with the raw call checked right where it is made (`GetLastError`
//! becomes the error's OS code).

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::ptr;

use windows_sys::Win32::Foundation::{
    DUPLICATE_SAME_ACCESS, DuplicateHandle, GetHandleInformation, HANDLE, HANDLE_FLAG_INHERIT,
    SetHandleInformation, WAIT_ABANDONED_0, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
    SetInformationJobObject,
};
use windows_sys::Win32::System::LibraryLoader::GetModuleFileNameW;
use windows_sys::Win32::System::Pipes::CreatePipe;
use windows_sys::Win32::System::Threading::{
    CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT, CreateEventW, CreateProcessW,
    DeleteProcThreadAttributeList, EXTENDED_STARTUPINFO_PRESENT, ExitProcess, GetCurrentProcess,
    GetExitCodeProcess, GetProcessAffinityMask, InitializeProcThreadAttributeList,
    PROC_THREAD_ATTRIBUTE_HANDLE_LIST, PROCESS_INFORMATION, ResumeThread, STARTF_USESTDHANDLES,
    STARTUPINFOEXW, SetEvent, SetProcessAffinityMask, TerminateProcess, UpdateProcThreadAttribute,
    WaitForMultipleObjects, WaitForSingleObject,
};

/// `INFINITE`: a wait without a time limit.
pub const INFINITE: u32 = windows_sys::Win32::System::Threading::INFINITE;

/// The most handles one `WaitForMultipleObjects` call accepts (`MAXIMUM_WAIT_OBJECTS`).
pub const MAX_WAIT_OBJECTS: usize = 64;

/// Turns a `BOOL` result into `io::Result`, reading the last error on failure.
fn check(ok: windows_sys::core::BOOL) -> io::Result<()> {
    if ok != 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Takes ownership of a handle a call just returned; null (or `INVALID_HANDLE_VALUE`) is the
/// last error.
fn owned(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() || handle.addr() == usize::MAX {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the caller passes a handle the system just created for this process; nothing
    // else owns it.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
}

/// A sentinel: a handle that becomes signaled when its process ends (any waitable handle can
/// be waited on with it).
pub type Sentinel<'a> = BorrowedHandle<'a>;

/// A handle a child can inherit: made inheritable and listed to the child, which finds it under
/// the same value.
pub type RawInherit = RawHandle;

/// A handle's value as a number, as it travels in `PIFORK_SPAWN` (an inherited handle has
/// the same value in the child).
pub fn handle_value(handle: RawHandle) -> i64 {
    handle.addr() as i64
}

/// `GetModuleFileNameW(NULL)`: the full path of the running executable, NUL-terminated.
pub fn current_exe() -> io::Result<Vec<u16>> {
    let mut buf = vec![0u16; 260];
    loop {
        let size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        // SAFETY: the buffer is writable for `size` UTF-16 units; a null module means the
        // executable of the calling process.
        let n = unsafe { GetModuleFileNameW(ptr::null_mut(), buf.as_mut_ptr(), size) } as usize;
        if n == 0 {
            return Err(io::Error::last_os_error());
        }
        if n < buf.len() {
            buf.truncate(n);
            buf.push(0);
            return Ok(buf);
        }
        // Truncated: the path did not fit (and is not NUL-terminated on older systems).
        if buf.len() >= 32 * 1024 {
            return Err(io::Error::from_raw_os_error(122)); // ERROR_INSUFFICIENT_BUFFER
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// `CreatePipe`: an anonymous pipe, (read end, write end), neither end inheritable.
/// `size` is a hint for the pipe's buffer (0: the system's default).
pub fn pipe(size: u32) -> io::Result<(OwnedHandle, OwnedHandle)> {
    let mut read: HANDLE = ptr::null_mut();
    let mut write: HANDLE = ptr::null_mut();
    // SAFETY: both out-pointers point to live locals; null security attributes make the ends
    // non-inheritable.
    check(unsafe { CreatePipe(&mut read, &mut write, ptr::null(), size) })?;
    Ok((owned(read)?, owned(write)?))
}

/// `SetHandleInformation(HANDLE_FLAG_INHERIT)`: whether child processes created with handle
/// inheritance may receive `handle`. A value that is not an open handle of this process is an
/// error, nothing worse.
pub fn set_inheritable(handle: RawHandle, on: bool) -> io::Result<()> {
    let flags = if on { HANDLE_FLAG_INHERIT } else { 0 };
    // SAFETY: the call only changes a flag of the handle table entry named by the value (the
    // caller's handle); an invalid value makes it fail with ERROR_INVALID_HANDLE.
    check(unsafe { SetHandleInformation(handle, HANDLE_FLAG_INHERIT, flags) })
}

/// `DuplicateHandle` within this process, the copy inheritable. `None` for a null handle (no
/// standard stream).
pub fn duplicate_inheritable(handle: RawHandle) -> io::Result<Option<OwnedHandle>> {
    if handle.is_null() || handle.addr() == usize::MAX {
        return Ok(None);
    }
    let mut copy: HANDLE = ptr::null_mut();
    // SAFETY: source and target process are this process (the pseudo handle needs no
    // closing); the out-pointer points to a live local.
    check(unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            handle,
            GetCurrentProcess(),
            &mut copy,
            0,
            1,
            DUPLICATE_SAME_ACCESS,
        )
    })?;
    owned(copy).map(Some)
}

/// A process created by [`create_process`].
#[derive(Debug)]
pub struct Created {
    /// The process (full access).
    pub process: OwnedHandle,
    /// Its first thread (to resume it when created suspended).
    pub thread: OwnedHandle,
    /// Its process id.
    pub pid: u32,
}

/// What [`create_process`] starts.
pub struct Command<'a> {
    /// The executable's path, NUL-terminated.
    pub application: &'a [u16],
    /// The command line, NUL-terminated (`CreateProcessW` may write into it).
    pub command_line: &'a mut [u16],
    /// The environment: `NAME=value` strings, each NUL-terminated, then one more NUL.
    pub environment: &'a [u16],
    /// Standard input, output and error of the child (null: none).
    pub stdio: [RawHandle; 3],
    /// Every handle the child inherits, standard streams included; each must be inheritable.
    pub inherit: &'a [RawHandle],
    /// Whether the first thread starts suspended.
    pub suspended: bool,
}

/// `CreateProcessW` with a `STARTUPINFOEXW` whose `PROC_THREAD_ATTRIBUTE_HANDLE_LIST` names
/// exactly the handles the child inherits: other inheritable handles of this process (made
/// by other threads, for other children) do not leak into it.
pub fn create_process(cmd: Command<'_>) -> io::Result<Created> {
    let terminated = |s: &[u16]| s.last() == Some(&0);
    if !terminated(cmd.application)
        || !terminated(cmd.command_line)
        || !cmd.environment.ends_with(&[0, 0])
    {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let handles: Vec<HANDLE> = cmd.inherit.to_vec();

    // The attribute list is an opaque, variable-sized structure: ask its size, then
    // initialize it in a buffer aligned for pointers.
    let mut size = 0usize;
    // SAFETY: a null list with a size pointer only queries the size (the call "fails" with
    // ERROR_INSUFFICIENT_BUFFER, which is expected).
    unsafe { InitializeProcThreadAttributeList(ptr::null_mut(), 1, 0, &mut size) };
    if size == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buffer = vec![0u64; size.div_ceil(8)];
    let list = buffer.as_mut_ptr().cast::<c_void>();
    // SAFETY: `buffer` is at least `size` bytes, 8-aligned, and outlives every use of `list`
    // (deleted below before the buffer is dropped).
    check(unsafe { InitializeProcThreadAttributeList(list, 1, 0, &mut size) })?;
    let list_guard = AttributeList(list);

    if !handles.is_empty() {
        // SAFETY: `handles` lives until after `CreateProcessW` returns (the attribute keeps a
        // pointer to it); the size is the array's size in bytes.
        check(unsafe {
            UpdateProcThreadAttribute(
                list,
                0,
                PROC_THREAD_ATTRIBUTE_HANDLE_LIST as usize,
                handles.as_ptr().cast::<c_void>(),
                std::mem::size_of_val(handles.as_slice()),
                ptr::null_mut(),
                ptr::null(),
            )
        })?;
    }

    let mut startup = STARTUPINFOEXW::default();
    startup.StartupInfo.cb = std::mem::size_of::<STARTUPINFOEXW>() as u32;
    startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    startup.StartupInfo.hStdInput = cmd.stdio[0];
    startup.StartupInfo.hStdOutput = cmd.stdio[1];
    startup.StartupInfo.hStdError = cmd.stdio[2];
    startup.lpAttributeList = list;

    let mut flags = EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT;
    if cmd.suspended {
        flags |= CREATE_SUSPENDED;
    }
    let mut info = PROCESS_INFORMATION::default();
    // SAFETY: every string is NUL-terminated (checked above) and lives for the call; the
    // environment block ends with two NULs and is UTF-16 (CREATE_UNICODE_ENVIRONMENT); the
    // command line is writable; `startup` carries its true size and a live attribute list;
    // `info` is a live out-parameter.
    let created = check(unsafe {
        CreateProcessW(
            cmd.application.as_ptr(),
            cmd.command_line.as_mut_ptr(),
            ptr::null(),
            ptr::null(),
            i32::from(!handles.is_empty()),
            flags,
            cmd.environment.as_ptr().cast::<c_void>(),
            ptr::null(),
            &startup.StartupInfo,
            &mut info,
        )
    });
    drop(list_guard);
    drop(handles);
    created?;
    Ok(Created {
        process: owned(info.hProcess)?,
        thread: owned(info.hThread)?,
        pid: info.dwProcessId,
    })
}

/// Deletes an initialized attribute list when dropped.
struct AttributeList(*mut c_void);

impl Drop for AttributeList {
    fn drop(&mut self) {
        // SAFETY: the list was initialized by `InitializeProcThreadAttributeList` and its
        // buffer is still alive (the guard is dropped before the buffer).
        unsafe { DeleteProcThreadAttributeList(self.0) };
    }
}

/// `ResumeThread`: lets a thread created suspended run.
pub fn resume_thread(thread: BorrowedHandle<'_>) -> io::Result<()> {
    // SAFETY: the handle is borrowed, so it stays open for the call.
    let previous = unsafe { ResumeThread(thread.as_raw_handle()) };
    if previous == u32::MAX { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `WaitForSingleObject`: true once `handle` is signaled, false when `timeout_ms` passed
/// first (0 polls).
pub fn wait_one(handle: BorrowedHandle<'_>, timeout_ms: u32) -> io::Result<bool> {
    // SAFETY: the handle is borrowed, so it stays open for the call.
    match unsafe { WaitForSingleObject(handle.as_raw_handle(), timeout_ms) } {
        WAIT_OBJECT_0 | WAIT_ABANDONED_0 => Ok(true),
        WAIT_TIMEOUT => Ok(false),
        _ => Err(io::Error::last_os_error()),
    }
}

/// `WaitForMultipleObjects` for any one of at most [`MAX_WAIT_OBJECTS`] distinct handles:
/// the index of the lowest signaled one, or `None` when `timeout_ms` passed first.
pub fn wait_multiple(handles: &[BorrowedHandle<'_>], timeout_ms: u32) -> io::Result<Option<usize>> {
    if handles.is_empty() || handles.len() > MAX_WAIT_OBJECTS {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let raw: Vec<HANDLE> = handles.iter().map(|h| h.as_raw_handle()).collect();
    let count = raw.len() as u32;
    // SAFETY: `raw` holds `count` handles borrowed for the duration of the call.
    let res = unsafe { WaitForMultipleObjects(count, raw.as_ptr(), 0, timeout_ms) };
    match res {
        WAIT_TIMEOUT => Ok(None),
        WAIT_FAILED => Err(io::Error::last_os_error()),
        r if (WAIT_OBJECT_0..WAIT_OBJECT_0 + count).contains(&r) => {
            Ok(Some((r - WAIT_OBJECT_0) as usize))
        }
        r if (WAIT_ABANDONED_0..WAIT_ABANDONED_0 + count).contains(&r) => {
            Ok(Some((r - WAIT_ABANDONED_0) as usize))
        }
        _ => Err(io::Error::last_os_error()),
    }
}

/// `GetExitCodeProcess`: the exit code of an ended process (`STILL_ACTIVE`, 259, while it
/// runs: ask only once its handle is signaled).
pub fn exit_code(process: BorrowedHandle<'_>) -> io::Result<u32> {
    let mut code = 0u32;
    // SAFETY: the handle is borrowed for the call; the out-pointer points to a live local.
    check(unsafe { GetExitCodeProcess(process.as_raw_handle(), &mut code) })?;
    Ok(code)
}

/// `TerminateProcess`: ends the process at once with exit code `code`.
pub fn terminate(process: BorrowedHandle<'_>, code: u32) -> io::Result<()> {
    // SAFETY: the handle is borrowed, so it stays open for the call.
    check(unsafe { TerminateProcess(process.as_raw_handle(), code) })
}

/// `CreateJobObjectW` + `SetInformationJobObject(JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE)`: an
/// anonymous job whose processes are all killed when its last handle closes.
pub fn kill_on_close_job() -> io::Result<OwnedHandle> {
    // SAFETY: null attributes (not inheritable) and a null name (anonymous job).
    let job = owned(unsafe { CreateJobObjectW(ptr::null(), ptr::null()) })?;
    let mut limits = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: the structure matches the information class and lives for the call; its true
    // size is passed.
    check(unsafe {
        SetInformationJobObject(
            job.as_raw_handle(),
            JobObjectExtendedLimitInformation,
            (&raw const limits).cast::<c_void>(),
            std::mem::size_of_val(&limits) as u32,
        )
    })?;
    Ok(job)
}

/// `AssignProcessToJobObject`.
pub fn assign_to_job(job: BorrowedHandle<'_>, process: BorrowedHandle<'_>) -> io::Result<()> {
    // SAFETY: both handles are borrowed, so they stay open for the call.
    check(unsafe { AssignProcessToJobObject(job.as_raw_handle(), process.as_raw_handle()) })
}

/// `SetProcessAffinityMask`: the CPUs (bit `n` for CPU `n`) `process` may run on.
pub fn set_process_affinity(process: BorrowedHandle<'_>, mask: usize) -> io::Result<()> {
    // SAFETY: the handle is borrowed, so it stays open for the call.
    check(unsafe { SetProcessAffinityMask(process.as_raw_handle(), mask) })
}

/// `GetProcessAffinityMask` of this process: the CPUs it may run on, ascending.
pub fn get_affinity() -> io::Result<Vec<usize>> {
    let (mut process_mask, mut system_mask) = (0usize, 0usize);
    // SAFETY: the pseudo handle of the current process needs no closing; both out-pointers
    // point to live locals.
    check(unsafe {
        GetProcessAffinityMask(GetCurrentProcess(), &mut process_mask, &mut system_mask)
    })?;
    Ok((0..usize::BITS as usize).filter(|&cpu| process_mask & (1 << cpu) != 0).collect())
}

/// `CreateEventW`: an unnamed, manual-reset event, initially not signaled.
pub fn event() -> io::Result<OwnedHandle> {
    // SAFETY: null attributes (not inheritable) and a null name (anonymous event).
    owned(unsafe { CreateEventW(ptr::null(), 1, 0, ptr::null()) })
}

/// `SetEvent`.
pub fn set_event(event: BorrowedHandle<'_>) -> io::Result<()> {
    // SAFETY: the handle is borrowed, so it stays open for the call.
    check(unsafe { SetEvent(event.as_raw_handle()) })
}

/// A handle handed down by a parent (its value travelled in the environment), as a `File`.
///
/// # Safety
/// The parent must have passed this handle for this process to own, and nothing else in this
/// process may refer to it.
pub unsafe fn inherited_file(handle: i64) -> File {
    let raw = ptr::without_provenance_mut::<c_void>(handle as usize);
    // SAFETY: forwarded to the caller (see above).
    unsafe { File::from_raw_handle(raw) }
}

/// Whether the handle whose value travelled in the environment is open here
/// (`GetHandleInformation`); touches nothing.
pub fn is_inherited_open(handle: i64) -> bool {
    let raw = ptr::without_provenance_mut::<c_void>(handle as usize);
    let mut flags = 0u32;
    // SAFETY: the call only reads the flags of the handle table entry named by the value into
    // `flags`, valid for the call; an invalid value makes it fail with ERROR_INVALID_HANDLE.
    unsafe { GetHandleInformation(raw, &mut flags) != 0 }
}

/// [`set_inheritable`] on a handle value that travelled in the environment.
pub fn set_inheritable_value(handle: i64, on: bool) -> io::Result<()> {
    set_inheritable(ptr::without_provenance_mut::<c_void>(handle as usize), on)
}

/// `ExitProcess`: leave the process now, without running Rust destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: ends the process; Windows exit codes are the same 32 bits, unsigned.
    unsafe { ExitProcess(code as u32) }
}
