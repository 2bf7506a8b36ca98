//! The segments under every shared object: [`SharedMemory`], the crate-private [`Segment`]
//! and object header, and [`ShmError`].

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use nix::errno::Errno;

use crate::error::OsError;
use crate::fdtable::take_inherited;
use crate::sys::{self, Mapping};

/// The largest segment: the mapping must fit the address space (`isize::MAX` bytes).
const MAX_SIZE: u64 = isize::MAX as u64;

/// Where named segments live.
const SHM_DIR: &str = "/dev/shm";

/// What can go wrong with shared memory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShmError {
    /// A segment's size must be at least one byte and fit the address space.
    InvalidSize {
        /// The size asked for (or found, attaching).
        size: u64,
    },
    /// A segment name is one path component: not empty, no `/` but an optional leading one,
    /// no NUL, not `.` or `..`, at most 255 bytes.
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No segment of that name exists (attach).
    NotFound {
        /// The name given.
        name: String,
    },
    /// A segment of that name exists already (create).
    Exists {
        /// The name given.
        name: String,
    },
    /// A semaphore's initial value beyond [`SEM_VALUE_MAX`](crate::sync::SEM_VALUE_MAX).
    InvalidValue {
        /// The value asked for.
        value: u32,
        /// The largest a semaphore takes.
        max: u32,
    },
    /// A range outside the segment.
    OutOfBounds {
        /// Where the range starts.
        offset: usize,
        /// Its length.
        len: usize,
        /// The segment's size.
        size: usize,
    },
    /// The descriptor was not handed to this process by its parent, or was claimed already.
    NotInherited {
        /// The descriptor's number.
        fd: RawFd,
    },
    /// The inherited descriptor holds another kind of shared object than the one claimed.
    WrongObject {
        /// What the caller claimed it to be.
        expected: String,
        /// What it is.
        found: String,
    },
    /// A system call failed.
    Sys {
        /// Which operation failed.
        op: &'static str,
        /// The OS error (also the error's `source()`).
        source: OsError,
    },
    /// A barrier's number of parties must be at least 1 (CPython: `ValueError`).
    InvalidParties,
    /// An index past the end of a [`ShareableList`](super::ShareableList) (CPython: `IndexError`).
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// A string or byte string longer than its [`ShareableList`](super::ShareableList) item's room (CPython:
    /// `ValueError: bytes/str item exceeds available storage`).
    ItemTooLong {
        /// Its length in bytes (UTF-8 for a string).
        len: usize,
        /// The item's room in bytes.
        room: usize,
    },
    /// A segment whose bytes are not a [`ShareableList`](super::ShareableList)'s layout (or were caught halfway
    /// through a change by another process).
    ListCorrupt {
        /// What is wrong.
        reason: String,
    },
    /// The [`SharedMemoryManager`](super::SharedMemoryManager) was shut down: it makes no more segments.
    ManagerShutDown,
}

impl ShmError {
    fn sys(op: &'static str) -> impl Fn(Errno) -> ShmError {
        move |e| ShmError::Sys { op, source: OsError::from_code(e as i32) }
    }
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmError::InvalidSize { size } => write!(
                f,
                "invalid shared memory size {size}: it must be at least 1 byte and at most \
                 {MAX_SIZE}"
            ),
            ShmError::InvalidName { name } => write!(
                f,
                "invalid shared memory name {name:?}: one path component (an optional leading \
                 '/', then no '/' or NUL), not '.' or '..', at most 255 bytes"
            ),
            ShmError::NotFound { name } => write!(f, "no shared memory segment named {name:?}"),
            ShmError::Exists { name } => {
                write!(f, "a shared memory segment named {name:?} exists already")
            }
            ShmError::InvalidValue { value, max } => {
                write!(f, "invalid semaphore value {value}: at most {max}")
            }
            ShmError::OutOfBounds { offset, len, size } => write!(
                f,
                "{len} bytes at offset {offset} are outside the {size}-byte shared memory segment"
            ),
            ShmError::NotInherited { fd } => write!(
                f,
                "descriptor {fd} was not handed to this process by its parent (or was taken \
                 already): list it in the parent's Process::inherit_fds"
            ),
            ShmError::WrongObject { expected, found } => {
                write!(f, "the inherited descriptor holds {found}, not {expected}")
            }
            ShmError::Sys { op, source } => write!(f, "{op} failed: {source}"),
            ShmError::InvalidParties => f.write_str("a barrier needs at least 1 party"),
            ShmError::IndexOutOfRange { index, len } => {
                write!(f, "index {index} out of range for a shareable list of {len} items")
            }
            ShmError::ItemTooLong { len, room } => {
                write!(f, "bytes/str item of {len} bytes exceeds available storage ({room} bytes)")
            }
            ShmError::ListCorrupt { reason } => {
                write!(f, "not a readable shareable list: {reason}")
            }
            ShmError::ManagerShutDown => {
                f.write_str("the shared memory manager is shut down: it makes no more segments")
            }
        }
    }
}

impl std::error::Error for ShmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShmError::Sys { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A mapped segment and the descriptor that names it: the one shared-memory mechanism under
/// [`SharedMemory`] and every synchronisation object and shared value of the crate.
#[derive(Debug)]
pub(crate) struct Segment {
    map: Mapping,
    fd: OwnedFd,
}

impl Segment {
    /// A new anonymous segment of `size` zero bytes on a sealed memfd (`tag` names it in
    /// `/proc/<pid>/fd`); its size can never change.
    pub(crate) fn anonymous(tag: &str, size: u64) -> Result<Segment, ShmError> {
        let size = checked_size(size)?;
        let tag = CString::new(format!("pifork-{tag}")).expect("tags have no NUL");
        let fd = sys::memfd_create(&tag).map_err(ShmError::sys("memfd_create"))?;
        sys::ftruncate(fd.as_fd(), size as u64).map_err(ShmError::sys("ftruncate"))?;
        sys::seal_size(fd.as_fd()).map_err(ShmError::sys("fcntl(F_ADD_SEALS)"))?;
        Segment::mapped(fd, size)
    }

    /// The segment of an open descriptor, mapped whole.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Segment, ShmError> {
        let size = sys::file_size(fd.as_fd()).map_err(ShmError::sys("fstat"))?;
        let size = checked_size(size)?;
        Segment::mapped(fd, size)
    }

    /// The segment of a descriptor handed down by the parent.
    pub(crate) fn inherited(fd: RawFd) -> Result<Segment, ShmError> {
        let owned = take_inherited(fd).map_err(|_| ShmError::NotInherited { fd })?;
        Segment::from_fd(owned)
    }

    fn mapped(fd: OwnedFd, size: usize) -> Result<Segment, ShmError> {
        let map = Mapping::map_shared(fd.as_fd(), size).map_err(ShmError::sys("mmap"))?;
        Ok(Segment { map, fd })
    }

    /// The mapping.
    pub(crate) fn map(&self) -> &Mapping {
        &self.map
    }

    /// A new anonymous segment holding one shared object of kind `kind` (`extra`: a number
    /// the object keeps in its header, such as an array's length) and `payload` bytes after
    /// the header, at [`PAYLOAD`].
    pub(crate) fn object(kind: Kind, extra: u64, payload: usize) -> Result<Segment, ShmError> {
        let size = (PAYLOAD as u64).saturating_add(payload as u64);
        let seg = Segment::anonymous(kind.tag(), size)?;
        seg.map.atomic_u32(4).store(kind.code(), Ordering::Relaxed);
        seg.map.atomic_u64(8).store(extra, Ordering::Relaxed);
        seg.map.atomic_u32(0).store(MAGIC, Ordering::Release);
        Ok(seg)
    }

    /// Claims the inherited descriptor `fd` as a shared object of kind `kind`; returns the
    /// segment and the header's number.
    pub(crate) fn claim_object(fd: RawFd, kind: Kind) -> Result<(Segment, u64), ShmError> {
        let seg = Segment::inherited(fd)?;
        let found = seg.kind();
        if found != Some(kind.code()) {
            let found = match found {
                Some(code) => Kind::describe(code),
                None => "no shared object of this crate".to_string(),
            };
            return Err(ShmError::WrongObject { expected: Kind::describe(kind.code()), found });
        }
        let extra = seg.map.atomic_u64(8).load(Ordering::Relaxed);
        Ok((seg, extra))
    }

    fn kind(&self) -> Option<u32> {
        let fits = self.map.len() >= PAYLOAD;
        (fits && self.map.atomic_u32(0).load(Ordering::Acquire) == MAGIC)
            .then(|| self.map.atomic_u32(4).load(Ordering::Relaxed))
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn checked_size(size: u64) -> Result<usize, ShmError> {
    match usize::try_from(size) {
        Ok(n) if n > 0 && size <= MAX_SIZE => Ok(n),
        _ => Err(ShmError::InvalidSize { size }),
    }
}

/// Marks a segment holding one of the crate's shared objects ("PFSO").
const MAGIC: u32 = u32::from_be_bytes(*b"PFSO");

/// Where an object's own bytes start, after its header (magic, kind, a number; a cache line).
pub(crate) const PAYLOAD: usize = 64;

/// The kinds of shared object, as recorded in a segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Lock,
    RLock,
    Semaphore,
    Event,
    /// A `RawValue` of the type with this typecode.
    RawValue(u8),
    /// A `Value` of the type with this typecode.
    Value(u8),
    /// A `RawArray` of the type with this typecode.
    RawArray(u8),
    /// An `Array` of the type with this typecode.
    Array(u8),
    /// A `Condition`.
    Condition,
    /// A `Barrier`.
    Barrier,
    /// A queue: 0 a `Queue`, 1 a `JoinableQueue`, 2 a `SimpleQueue`.
    Queue(u8),
}

impl Kind {
    fn code(self) -> u32 {
        match self {
            Kind::Lock => 1,
            Kind::RLock => 2,
            Kind::Semaphore => 3,
            Kind::Event => 4,
            Kind::RawValue(t) => 5 | u32::from(t) << 8,
            Kind::Value(t) => 6 | u32::from(t) << 8,
            Kind::RawArray(t) => 7 | u32::from(t) << 8,
            Kind::Array(t) => 8 | u32::from(t) << 8,
            Kind::Condition => 9,
            Kind::Barrier => 10,
            Kind::Queue(f) => 11 | u32::from(f) << 8,
        }
    }

    /// The name of the object's memfd (seen in `/proc/<pid>/fd` as `/memfd:pifork-<tag>`).
    fn tag(self) -> &'static str {
        match self {
            Kind::Lock => "lock",
            Kind::RLock => "rlock",
            Kind::Semaphore => "semaphore",
            Kind::Event => "event",
            Kind::RawValue(_) => "rawvalue",
            Kind::Value(_) => "value",
            Kind::RawArray(_) => "rawarray",
            Kind::Array(_) => "array",
            Kind::Condition => "condition",
            Kind::Barrier => "barrier",
            Kind::Queue(_) => "queue",
        }
    }

    fn describe(code: u32) -> String {
        let t = char::from((code >> 8) as u8);
        let kind = match code & 0xff {
            1 => return "a Lock".into(),
            2 => return "an RLock".into(),
            3 => return "a Semaphore".into(),
            4 => return "an Event".into(),
            5 => "a RawValue",
            6 => "a Value",
            7 => "a RawArray",
            8 => "an Array",
            9 => return "a Condition".into(),
            10 => return "a Barrier".into(),
            11 => {
                return match code >> 8 {
                    0 => "a Queue".into(),
                    1 => "a JoinableQueue".into(),
                    2 => "a SimpleQueue".into(),
                    f => format!("an unknown queue (flavour {f})"),
                };
            }
            _ => return format!("an unknown shared object (kind {code})"),
        };
        format!("{kind} of typecode '{t}'")
    }
}

/// A shared memory segment: bytes several processes see alike (CPython's
/// `multiprocessing.shared_memory.SharedMemory`). Anonymous ([`new`](Self::new)) or named
/// ([`create`](Self::create), [`attach`](Self::attach)). A clone is the same segment.
///
/// ```standalone_crate
/// use pifork::SharedMemory;
/// # let name = format!("pifork-doc-{}", std::process::id());
/// let owner = SharedMemory::create(&name, 16)?;
/// owner.write(0, &42u64.to_le_bytes())?;
/// let other = SharedMemory::attach(&name)?; // as another program would
/// let mut word = [0u8; 8];
/// other.read(0, &mut word)?;
/// assert_eq!(u64::from_le_bytes(word), 42);
/// owner.unlink()?; // the owner's to remove; mappings stay valid until dropped
/// assert!(SharedMemory::attach(&name).is_err());
/// # Ok::<(), pifork::ShmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SharedMemory {
    seg: Arc<Segment>,
    name: Option<Arc<str>>,
}

impl SharedMemory {
    /// A new anonymous segment of `size` zero bytes, on a memfd: it has no name and cannot
    /// leak, and its size is sealed. `size` 0, or beyond `isize::MAX`, is
    /// [`ShmError::InvalidSize`].
    pub fn new(size: usize) -> Result<SharedMemory, ShmError> {
        let seg = Segment::anonymous("shm", size as u64)?;
        Ok(SharedMemory { seg: Arc::new(seg), name: None })
    }

    /// Creates the named segment `name` (`/dev/shm/<name>`, mode 0600), of `size` zero bytes.
    /// A name that exists already is [`ShmError::Exists`]; the caller owns the name and
    /// removes it with [`unlink`](Self::unlink) (nothing else will).
    pub fn create(name: &str, size: usize) -> Result<SharedMemory, ShmError> {
        let (name, path) = segment_path(name)?;
        let size = checked_size(size as u64)?;
        let fd = sys::shm_create(&path).map_err(|e| match e {
            Errno::EEXIST => ShmError::Exists { name: name.to_string() },
            e => ShmError::sys("open")(e),
        })?;
        let made = sys::ftruncate(fd.as_fd(), size as u64)
            .map_err(ShmError::sys("ftruncate"))
            .and_then(|()| Segment::mapped(fd, size));
        match made {
            Ok(seg) => Ok(SharedMemory { seg: Arc::new(seg), name: Some(name.into()) }),
            Err(e) => {
                // Leave no half-made segment behind.
                let _ = sys::shm_unlink(&path);
                Err(e)
            }
        }
    }

    /// Creates a named segment of `size` zero bytes under a fresh random name, `psm_` and 8
    /// hex digits (CPython's `SharedMemory(create=True, size=size)`), drawing again if the
    /// name is taken. The caller owns it, as with [`create`](Self::create).
    pub fn create_unique(size: usize) -> Result<SharedMemory, ShmError> {
        checked_size(size as u64)?;
        let mut last = None;
        for _ in 0..64 {
            match SharedMemory::create(&random_name(), size) {
                Err(e @ ShmError::Exists { .. }) => last = Some(e),
                made => return made,
            }
        }
        Err(last.expect("64 names were drawn"))
    }

    /// Attaches to the existing named segment `name`, mapping all of it. No such segment is
    /// [`ShmError::NotFound`]; an empty one, [`ShmError::InvalidSize`]. A named segment's
    /// file can be truncated by any program that may open it: touching a part cut off after
    /// the mapping was made raises `SIGBUS`, as in CPython (anonymous segments are sealed
    /// against it).
    pub fn attach(name: &str) -> Result<SharedMemory, ShmError> {
        let (name, path) = segment_path(name)?;
        let fd = sys::shm_open_existing(&path).map_err(|e| match e {
            Errno::ENOENT => ShmError::NotFound { name: name.to_string() },
            e => ShmError::sys("open")(e),
        })?;
        let seg = Segment::from_fd(fd)?;
        Ok(SharedMemory { seg: Arc::new(seg), name: Some(name.into()) })
    }

    /// Claims the segment the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`); each can be claimed once. Else [`ShmError::NotInherited`].
    /// The claimed segment has no name here, even if it has one in `/dev/shm`.
    pub fn from_inherited(fd: RawFd) -> Result<SharedMemory, ShmError> {
        Ok(SharedMemory { seg: Arc::new(Segment::inherited(fd)?), name: None })
    }

    /// The segment's size in bytes.
    pub fn size(&self) -> usize {
        self.seg.map().len()
    }

    /// The segment's name (without a leading `/`), `None` for an anonymous one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Removes a named segment's name from `/dev/shm` (CPython's `unlink`): no process can
    /// attach to it any more; the memory lives on while some process maps it. An anonymous
    /// segment has nothing to remove (`Ok`); a name already removed is
    /// [`ShmError::NotFound`].
    pub fn unlink(&self) -> Result<(), ShmError> {
        match self.name.as_deref() {
            Some(name) => SharedMemory::unlink_name(name),
            None => Ok(()),
        }
    }

    /// Removes the named segment `name` from `/dev/shm`.
    pub(super) fn unlink_name(name: &str) -> Result<(), ShmError> {
        let (_, path) = segment_path(name)?;
        sys::shm_unlink(&path).map_err(|e| match e {
            Errno::ENOENT => ShmError::NotFound { name: name.to_string() },
            e => ShmError::sys("unlink")(e),
        })
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), ShmError> {
        self.check(offset, buf.len())?;
        self.seg.map().read(offset, buf);
        Ok(())
    }

    /// Copies `data` into the segment at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), ShmError> {
        self.check(offset, data.len())?;
        self.seg.map().write(offset, data);
        Ok(())
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        let size = self.size();
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(()),
            _ => Err(ShmError::OutOfBounds { offset, len, size }),
        }
    }
}

/// CPython's repr: `SharedMemory('psm_1', size=512)`; `SharedMemory(None, size=512)` for an
/// anonymous segment.
impl fmt::Display for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "SharedMemory('{name}', size={})", self.size()),
            None => write!(f, "SharedMemory(None, size={})", self.size()),
        }
    }
}

impl AsFd for SharedMemory {
    /// The segment's descriptor, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

impl AsRawFd for SharedMemory {
    fn as_raw_fd(&self) -> RawFd {
        self.seg.as_fd().as_raw_fd()
    }
}

/// `psm_` and 8 hex digits, from the standard library's randomly keyed hasher (seeded by the
/// OS once per process, then stepped per call) over this process's id and a counter.
fn random_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::AtomicU64;
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(DRAWN.fetch_add(1, Ordering::Relaxed));
    format!("psm_{:08x}", h.finish() as u32)
}

/// The name without its optional leading `/`, and the segment's path.
fn segment_path(name: &str) -> Result<(&str, CString), ShmError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let bad = bare.is_empty()
        || bare.len() > 255
        || bare == "."
        || bare == ".."
        || bare.contains('/')
        || bare.contains('\0');
    if bad {
        return Err(ShmError::InvalidName { name: name.to_string() });
    }
    let path = CString::new(format!("{SHM_DIR}/{bare}")).expect("no NUL");
    Ok((bare, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_component() {
        for bad in ["", "/", "a/b", "//x", ".", "..", "x\0y"] {
            assert_eq!(
                SharedMemory::attach(bad).unwrap_err(),
                ShmError::InvalidName { name: bad.into() },
                "{bad:?}"
            );
        }
        assert_eq!(segment_path("/abc").unwrap().0, "abc");
        assert!(segment_path(&"n".repeat(256)).is_err());
        assert!(segment_path(&"n".repeat(255)).is_ok());
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(SharedMemory::new(0).unwrap_err(), ShmError::InvalidSize { size: 0 });
        let huge = usize::MAX;
        assert_eq!(
            SharedMemory::new(huge).unwrap_err(),
            ShmError::InvalidSize { size: huge as u64 }
        );
        let shm = SharedMemory::new(10).unwrap();
        assert_eq!(
            shm.write(8, &[1, 2, 3]).unwrap_err(),
            ShmError::OutOfBounds { offset: 8, len: 3, size: 10 }
        );
        assert!(shm.read(usize::MAX, &mut [0]).is_err());
    }

    #[test]
    fn unaligned_bytes_round_trip() {
        let shm = SharedMemory::new(100).unwrap();
        let data: Vec<u8> = (0..77).collect();
        shm.write(3, &data).unwrap();
        let mut back = vec![0u8; 77];
        shm.read(3, &mut back).unwrap();
        assert_eq!(back, data);
        let mut head = [9u8; 3];
        shm.read(0, &mut head).unwrap();
        assert_eq!(head, [0, 0, 0], "new segments read as zero");
    }

    #[test]
    fn object_kinds_are_told_apart() {
        assert_eq!(Kind::describe(Kind::Value(b'q').code()), "a Value of typecode 'q'");
        assert_eq!(Kind::describe(Kind::Lock.code()), "a Lock");
        assert_eq!(Kind::describe(99), "an unknown shared object (kind 99)");
        assert_eq!(Kind::describe(Kind::Condition.code()), "a Condition");
        assert_eq!(Kind::describe(Kind::Barrier.code()), "a Barrier");
    }
}
