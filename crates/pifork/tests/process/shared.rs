//! Shared memory across processes (`pifork::SharedMemory`, `Value`, `Array`, `RawValue`,
//! `RawArray`), under every start method: CPython's `_TestValue`, `_TestArray` and
//! `_TestSharedMemory` translated; a value incremented under its lock by a parent and a child
//! at once adds up exactly; anonymous segments leave nothing in `/dev/shm`, even when their
//! program is SIGKILLed; named ones persist until unlinked.

use std::os::fd::AsRawFd;
use std::time::Duration;

use pifork::{
    Array, ExitCode, Process, RawArray, RawValue, SharedMemory, ShmError, StartMethod, Value,
    sync::Lock,
};

use crate::common::{self, Test, sleep_ms};
use crate::sync::child;

const INCREMENT: &str = "shared.increment";
const FILL: &str = "shared.fill";
const WRITE: &str = "shared.write";
const ATTACH: &str = "shared.attach";
const HOLDER: &str = "shared.holder";
const PREFIX: &str = "shared.prefix";

/// Increments per process in the counting test.
const ROUNDS: u64 = 20_000;

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(INCREMENT, |(fd, n): (i32, u64)| {
        let v = Value::<u64>::from_inherited(fd).unwrap();
        for _ in 0..n {
            let _g = v.get_lock().lock();
            v.set(v.get() + 1);
        }
    });
    // Writes i/2 into element i of the array, and -1 into the raw one's element 1.
    pifork::register(FILL, |(array, raw): (i32, i32)| {
        let a = Array::<f64>::from_inherited(array).unwrap();
        let r = RawArray::<i16>::from_inherited(raw).unwrap();
        let _g = a.get_lock().lock();
        for i in 0..a.len() {
            a.set(i, i as f64 / 2.0).unwrap();
        }
        r.set(1, -1).unwrap();
        a.len()
    });
    // Turns the array into its prefix sums in place, under its lock.
    pifork::register(PREFIX, |fd: i32| {
        let a = Array::<i32>::from_inherited(fd).unwrap();
        let _g = a.get_lock().lock();
        for i in 1..a.len() {
            a.set(i, a.get(i).unwrap() + a.get(i - 1).unwrap()).unwrap();
        }
    });
    // Writes `data` at `offset` of an inherited segment; returns its size.
    pifork::register(WRITE, |(fd, offset, data): (i32, u64, Vec<u8>)| {
        let shm = SharedMemory::from_inherited(fd).unwrap();
        shm.write(offset as usize, &data).unwrap();
        shm.size()
    });
    // Attaches by name, as an unrelated program would: reads the first 5 bytes, writes its own.
    pifork::register(ATTACH, |name: String| {
        let shm = SharedMemory::attach(&name).unwrap();
        let mut head = vec![0u8; 5];
        shm.read(0, &mut head).unwrap();
        shm.write(8, b"child").unwrap();
        (head, shm.size(), shm.name().map(str::to_string))
    });
    // Makes anonymous objects of every kind, takes the lock, and waits to be killed.
    pifork::register(HOLDER, |(): ()| {
        let shm = SharedMemory::new(1 << 20).unwrap();
        shm.write(0, &[7; 4096]).unwrap();
        let lock = Lock::new().unwrap();
        let _g = lock.lock();
        let _v = Value::new(1.0f64).unwrap();
        let _a = RawArray::<u8>::zeroed(100).unwrap();
        let _e = pifork::sync::Event::new().unwrap();
        let _l = pifork::ShareableList::new(["a list", "of strings"]).unwrap();
        // Every other kind of object, each holding something: a queued item, a taken
        // permit, a held RLock, a Barrier with one party waiting.
        let q = pifork::queue::Queue::<String>::new().unwrap();
        q.put(&"left behind".to_string()).unwrap();
        let j = pifork::queue::JoinableQueue::<u32>::new().unwrap();
        j.put(&1).unwrap();
        let s = pifork::queue::SimpleQueue::<u32>::new().unwrap();
        s.put(&2).unwrap();
        let sem = pifork::sync::Semaphore::new(1).unwrap();
        let _p = sem.acquire();
        let bounded = pifork::sync::BoundedSemaphore::new(1).unwrap();
        let _b = bounded.acquire();
        let rlock = pifork::sync::RLock::new().unwrap();
        let _r = rlock.lock();
        let _c = pifork::sync::Condition::new().unwrap();
        let barrier = pifork::sync::Barrier::new(2).unwrap();
        let _w = std::thread::spawn(move || barrier.wait(None));
        sleep_ms(60_000);
    });
}

pub const TESTS: &[Test] = &[
    Test::InChildren("values_follow_cpython", values_follow_cpython),
    Test::InChildren("bad_sizes_and_names_are_typed_errors", bad_sizes_and_names_are_typed_errors),
    Test::InChildren(
        "a_named_segment_persists_until_unlinked",
        a_named_segment_persists_until_unlinked,
    ),
    Test::Once("fork_closures_share_values", fork_closures_share_values),
    Test::EachMethod("a_value_counts_exactly_under_its_lock", a_value_counts_exactly),
    Test::EachMethod("arrays_are_shared_with_a_child", arrays_are_shared_with_a_child),
    Test::EachMethod("an_array_follows_cpython", an_array_follows_cpython),
    Test::EachMethod("a_segment_is_shared_with_a_child", a_segment_is_shared_with_a_child),
    Test::EachMethod("a_child_attaches_by_name", a_child_attaches_by_name),
    Test::EachMethod("a_killed_program_leaves_nothing_in_dev_shm", nothing_left_in_dev_shm),
];

/// A name for a named segment of this test run.
fn segment_name(what: &str) -> String {
    format!("pifork-test-{}-{what}", std::process::id())
}

/// The entries of /dev/shm.
fn dev_shm() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

// _TestValue.test_value and test_rawvalue, _TestArray.test_array: initial values, stores,
// the lock (an RLock, as CPython's default), and zeroed arrays.
fn values_follow_cpython() {
    let cases =
        (Value::new(25i32).unwrap(), Value::new(1.25f64).unwrap(), Value::new(true).unwrap());
    assert_eq!((cases.0.get(), cases.1.get(), cases.2.get()), (25, 1.25, true));
    cases.0.set(-7);
    cases.1.set(f64::MIN_POSITIVE);
    cases.2.set(false);
    assert_eq!((cases.0.get(), cases.1.get(), cases.2.get()), (-7, f64::MIN_POSITIVE, false));
    let lock = cases.0.get_lock();
    let _outer = lock.lock();
    let _inner = lock.lock(); // recursive, as CPython's default RLock
    let raw = RawValue::new(u64::MAX).unwrap();
    assert_eq!(raw.get(), u64::MAX);
    let arr = Array::new(&[1i64, 2, 3, -4]).unwrap();
    assert_eq!((arr.len(), arr.to_vec()), (4, vec![1, 2, 3, -4]));
    arr.write_from(1, &[20, 30]).unwrap();
    assert_eq!(arr.to_vec(), [1, 20, 30, -4]);
    assert_eq!(arr.get(4), None);
    let zeros = RawArray::<f32>::zeroed(10).unwrap();
    assert_eq!(zeros.to_vec(), [0.0; 10]);
    assert!(!zeros.is_empty());
}

// _TestSharedMemory: a size of zero is refused; attaching a name that does not exist is an
// error; so is creating one that does.
fn bad_sizes_and_names_are_typed_errors() {
    assert_eq!(SharedMemory::new(0).unwrap_err(), ShmError::InvalidSize { size: 0 });
    let name = segment_name("bad");
    assert_eq!(SharedMemory::create(&name, 0).unwrap_err(), ShmError::InvalidSize { size: 0 });
    assert!(!dev_shm().contains(&name), "a refused segment leaves no file");
    let huge = usize::MAX;
    assert_eq!(SharedMemory::new(huge).unwrap_err(), ShmError::InvalidSize { size: huge as u64 });
    // Beyond what memory can map: the kernel's refusal, typed.
    match SharedMemory::create(&name, 1 << 62) {
        Err(ShmError::Sys { .. } | ShmError::InvalidSize { .. }) => {}
        other => panic!("a 4 EiB segment: {other:?}"),
    }
    assert!(!dev_shm().contains(&name), "a failed create leaves no file");
    let missing = segment_name("missing");
    assert_eq!(SharedMemory::attach(&missing).unwrap_err(), ShmError::NotFound { name: missing });
    assert!(matches!(SharedMemory::attach("a/b"), Err(ShmError::InvalidName { .. })));
    let shm = SharedMemory::create(&name, 10).unwrap();
    assert_eq!(
        SharedMemory::create(&name, 10).unwrap_err(),
        ShmError::Exists { name: name.clone() }
    );
    assert_eq!(
        SharedMemory::create(&format!("/{name}"), 10).unwrap_err(),
        ShmError::Exists { name: name.clone() },
        "a leading slash names the same segment"
    );
    shm.unlink().unwrap();
    assert_eq!(shm.unlink().unwrap_err(), ShmError::NotFound { name });
}

fn a_named_segment_persists_until_unlinked() {
    let name = segment_name("persists");
    let owner = SharedMemory::create(&name, 4096).unwrap();
    assert_eq!(owner.name(), Some(name.as_str()));
    assert_eq!(owner.size(), 4096);
    assert_eq!(owner.to_string(), format!("SharedMemory('{name}', size=4096)"));
    assert_eq!(SharedMemory::new(512).unwrap().to_string(), "SharedMemory(None, size=512)");
    owner.write(100, b"kept").unwrap();
    drop(owner);
    // No tracker: dropping the last handle removes nothing.
    assert!(dev_shm().contains(&name));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(format!("/dev/shm/{name}")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "only its owner may open it");
    let again = SharedMemory::attach(&name).unwrap();
    let mut buf = [0u8; 4];
    again.read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"kept");
    again.unlink().unwrap();
    assert!(!dev_shm().contains(&name));
    // The mapping outlives the name.
    again.write(0, b"still mapped").unwrap();
    assert!(matches!(SharedMemory::attach(&name), Err(ShmError::NotFound { .. })));
}

fn fork_closures_share_values() {
    // Under fork a clone captured by the target shares the memory: no descriptor to pass.
    let v = Value::new(0u64).unwrap();
    let kids: Vec<Process> = (0..2)
        .map(|_| {
            let v = v.clone();
            let mut p = Process::new(move || {
                for _ in 0..ROUNDS {
                    let _g = v.get_lock().lock();
                    v.set(v.get() + 1);
                }
            });
            p.start().unwrap();
            p
        })
        .collect();
    for _ in 0..ROUNDS {
        let _g = v.get_lock().lock();
        v.set(v.get() + 1);
    }
    for mut p in kids {
        p.join().unwrap();
        assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    }
    assert_eq!(v.get(), 3 * ROUNDS);
}

fn a_value_counts_exactly(m: StartMethod) {
    let v = Value::new(0u64).unwrap();
    let fd = v.as_raw_fd();
    let mut p = child::<()>(INCREMENT, &(fd, ROUNDS), m, &[fd]);
    for _ in 0..ROUNDS {
        let _g = v.get_lock().lock();
        v.set(v.get() + 1);
    }
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    assert_eq!(v.get(), 2 * ROUNDS, "every increment counted once");
}

fn arrays_are_shared_with_a_child(m: StartMethod) {
    let a = Array::<f64>::zeroed(1000).unwrap();
    let raw = RawArray::new(&[5i16, 6, 7]).unwrap();
    let fds = [a.as_raw_fd(), raw.as_raw_fd()];
    let mut p = child::<usize>(FILL, &(fds[0], fds[1]), m, &fds);
    assert_eq!(p.result().unwrap(), 1000, "the child sees the length");
    let _g = a.get_lock().lock();
    assert!(a.to_vec().iter().enumerate().all(|(i, &x)| x == i as f64 / 2.0));
    assert_eq!(raw.to_vec(), [5, -1, 7]);
}

// _TestArray.test_array and test_array_from_size: the length, an element, a slice, a slice
// assignment; a child turns the array into its prefix sums in place, and the parent sees
// them; zeroed arrays are zero every time.
fn an_array_follows_cpython(m: StartMethod) {
    let seq = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831];
    let arr = Array::<i32>::new(&seq).unwrap();
    assert_eq!(arr.len(), 10);
    assert_eq!(arr.get(3), Some(821));
    assert_eq!(arr.slice(2..7).unwrap(), seq[2..7]);
    assert_eq!(arr.slice(..).unwrap(), seq);
    assert_eq!(arr.slice(7..=9).unwrap(), seq[7..=9]);
    assert_eq!(arr.slice(10..).unwrap(), Vec::<i32>::new());
    assert_eq!(
        arr.slice(8..11).unwrap_err(),
        ShmError::OutOfBounds { offset: 8, len: 3, size: 10 },
        "past the end"
    );
    let backwards = (std::ops::Bound::Included(5), std::ops::Bound::Excluded(2));
    assert!(arr.slice(backwards).is_err(), "backwards");
    arr.write_from(4, &[1, 2, 3, 4]).unwrap();
    let mut want = seq;
    want[4..8].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(arr.to_vec(), want);
    let mut p = child::<()>(PREFIX, &arr.as_raw_fd(), m, &[arr.as_raw_fd()]);
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    for i in 1..want.len() {
        want[i] += want[i - 1];
    }
    assert_eq!(arr.slice(..).unwrap(), want);
    for _ in 0..3 {
        let zeros = Array::<i32>::zeroed(10).unwrap();
        assert_eq!(zeros.to_vec(), [0; 10]);
        zeros.write_from(0, &(0..10).collect::<Vec<i32>>()).unwrap();
        assert_eq!(zeros.to_vec(), (0..10).collect::<Vec<i32>>());
    }
}

fn a_segment_is_shared_with_a_child(m: StartMethod) {
    let shm = SharedMemory::new(1 << 16).unwrap();
    shm.write(0, b"parent").unwrap();
    let fd = shm.as_raw_fd();
    let data: Vec<u8> = (0..=255).collect();
    let mut p = child::<usize>(WRITE, &(fd, 1001u64, data.clone()), m, &[fd]);
    assert_eq!(p.result().unwrap(), 1 << 16);
    let mut back = vec![0u8; 256];
    shm.read(1001, &mut back).unwrap();
    assert_eq!(back, data);
    let mut head = [0u8; 6];
    shm.read(0, &mut head).unwrap();
    assert_eq!(&head, b"parent", "the child wrote only where it was told");
}

fn a_child_attaches_by_name(m: StartMethod) {
    let name = segment_name(&format!("attach-{m}"));
    let shm = SharedMemory::create(&name, 64).unwrap();
    shm.write(0, b"hello").unwrap();
    let mut p = child::<(Vec<u8>, usize, Option<String>)>(ATTACH, &name, m, &[]);
    let (head, size, seen) = p.result().unwrap();
    assert_eq!((head.as_slice(), size, seen.as_deref()), (&b"hello"[..], 64, Some(name.as_str())));
    let mut buf = [0u8; 5];
    shm.read(8, &mut buf).unwrap();
    assert_eq!(&buf, b"child");
    assert!(dev_shm().contains(&name), "the child's end removed nothing");
    shm.unlink().unwrap();
}

fn nothing_left_in_dev_shm(m: StartMethod) {
    let before = dev_shm();
    let mut p = Process::<()>::entry(HOLDER, &()).start_method(m).daemon(true);
    p.start().unwrap();
    let pid = p.pid().unwrap().unwrap().as_raw();
    // Its objects are memfds: anonymous files, in no directory.
    let memfds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .filter(|t| t.to_string_lossy().starts_with("/memfd:pifork-"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(common::eventually(Duration::from_secs(20), || memfds() >= 13), "{} memfds", memfds());
    p.kill().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Signaled(9)));
    let after = dev_shm();
    let new: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
    assert!(new.iter().all(|n| !n.starts_with("pifork")), "left in /dev/shm: {new:?}");
}
