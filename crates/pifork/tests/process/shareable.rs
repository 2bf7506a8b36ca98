//! `ShareableList` and `SharedMemoryManager`: CPython's `_TestSharedMemory` checks of them
//! translated (`test_shared_memory_ShareableList_basics`, `…_SharedMemoryManager_basics`,
//! the pickling tests' "a second handle shares the data" and "a dead name cannot be
//! attached"), a list shared with a child under every start method, by descriptor and by
//! name, and a list read and written by CPython itself on the same bytes.

use std::os::fd::AsRawFd;
use std::process::Command;

use pifork::shm::{Item, ShareableList, SharedMemory, SharedMemoryManager};
use pifork::{ExitCode, Process, ShmError, StartMethod};

use crate::common::Test;
use crate::sync::child;

const LIST_INHERITED: &str = "shareable.inherited";
const LIST_ATTACH: &str = "shareable.attach";
const MANAGED: &str = "shareable.managed";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(LIST_INHERITED, |fd: i32| touch(&ShareableList::from_inherited(fd).unwrap()));
    pifork::register(LIST_ATTACH, |name: String| touch(&ShareableList::attach(&name).unwrap()));
    // Attaches to each named segment and list as an unrelated program would: their sizes and
    // lengths.
    pifork::register(MANAGED, |(segments, lists): (Vec<String>, Vec<String>)| {
        let sizes: Vec<u64> =
            segments.iter().map(|n| SharedMemory::attach(n).unwrap().size() as u64).collect();
        let lens: Vec<u64> =
            lists.iter().map(|n| ShareableList::attach(n).unwrap().len() as u64).collect();
        (sizes, lens)
    });
}

/// What a child does with a list: reads it whole (its repr), then replaces the first and the
/// last items.
fn touch(list: &ShareableList) -> String {
    let seen = list.to_string();
    list.set(0, "kid").unwrap();
    list.set(list.len() - 1, 880).unwrap();
    seen
}

pub const TESTS: &[Test] = &[
    Test::InChildren("a_list_follows_cpython", a_list_follows_cpython),
    Test::Once("a_manager_unlinks_what_it_made", a_manager_unlinks_what_it_made),
    Test::Once("cpython_reads_and_writes_the_same_list", cpython_shares_the_list),
    Test::InChildren("a_segment_that_is_no_list_is_refused", a_segment_that_is_no_list_is_refused),
    Test::EachMethod("a_list_is_shared_with_a_child", a_list_is_shared_with_a_child),
    Test::EachMethod("a_child_attaches_to_a_list_by_name", a_child_attaches_by_name),
    Test::EachMethod("a_child_attaches_to_managed_segments", a_child_attaches_to_managed),
];

fn name(what: &str) -> String {
    format!("pifork-test-{}-{what}", std::process::id())
}

fn exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

fn book_list() -> Vec<Item> {
    vec![
        "howdy".into(),
        b"HoWdY".into(),
        (-273.154).into(),
        100.into(),
        Item::None,
        true.into(),
        42.into(),
    ]
}

// _TestSharedMemory.test_shared_memory_ShareableList_basics, step by step.
fn a_list_follows_cpython() {
    let owned = name("basics");
    let sl = ShareableList::create(&owned, book_list()).unwrap();
    let repr = sl.to_string();
    assert_eq!(
        repr,
        format!(
            "ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42], name='{owned}')"
        )
    );
    assert_eq!(sl.get(7).unwrap_err(), ShmError::IndexOutOfRange { index: 7, len: 7 });
    assert_eq!(sl.set(7, 2).unwrap_err(), ShmError::IndexOutOfRange { index: 7, len: 7 });
    let before = sl.format().unwrap();
    sl.set(0, "howdy").unwrap();
    assert_eq!(sl.format().unwrap(), before, "the same string keeps its format");
    assert_eq!(sl.format().unwrap(), "8s8sdqxxxxxx?xxxxxxxx?q");
    assert_eq!(sl.len(), 7);
    assert_eq!(sl.index("100").unwrap(), None, "a string is not a number");
    assert_eq!(sl.index(100).unwrap(), Some(3));
    assert_eq!(sl.get(0).unwrap(), Item::from("howdy"));
    assert_eq!(sl.get(sl.len() - 2).unwrap(), Item::Bool(true));
    assert_eq!(sl.to_vec().unwrap(), book_list());
    sl.set(3, 42).unwrap();
    assert_eq!(sl.get(3).unwrap(), Item::Int(42));
    sl.set(4, "some").unwrap();
    assert_eq!(sl.get(4).unwrap(), Item::from("some"));
    assert_eq!(sl.format().unwrap(), "8s8sdq8sxxxxxxx?q", "None's room now holds a string");
    let err = sl.set(4, "far too many").unwrap_err();
    assert_eq!(err, ShmError::ItemTooLong { len: 12, room: 8 });
    assert!(err.to_string().contains("exceeds available storage"), "{err}");
    assert_eq!(sl.get(4).unwrap(), Item::from("some"), "a refused write changes nothing");
    sl.set(0, "encodés").unwrap(); // 7 characters, 8 bytes: fits
    assert_eq!(sl.get(0).unwrap(), Item::from("encodés"));
    assert_eq!(sl.get(1).unwrap(), Item::from(b"HoWdY"), "the neighbour is untouched");
    assert!(matches!(sl.set(0, "encodées"), Err(ShmError::ItemTooLong { len: 9, room: 8 })));
    assert!(matches!(sl.set(1, &b"123456789"[..]), Err(ShmError::ItemTooLong { .. })));
    assert_eq!(sl.get(1).unwrap(), Item::from(b"HoWdY"));
    assert_eq!(sl.count(42).unwrap(), 2);
    assert_eq!(sl.count(b"HoWdY").unwrap(), 1);
    assert_eq!(sl.count(b"adios").unwrap(), 0);
    assert_eq!(sl.count(1).unwrap(), 1, "Python's ==: True counts as 1");
    // A copy under a new name is independent.
    let copy_name = name("duplicate");
    let copy = ShareableList::create(&copy_name, sl.to_vec().unwrap()).unwrap();
    assert_ne!(copy.name(), sl.name());
    assert_eq!(copy.name(), Some(copy_name.as_str()));
    assert_eq!(copy.to_vec().unwrap(), sl.to_vec().unwrap());
    assert_eq!(copy.format().unwrap(), sl.format().unwrap());
    copy.set(6, 77).unwrap();
    assert_eq!(copy.get(6).unwrap(), Item::Int(77));
    assert_ne!(sl.get(6).unwrap(), Item::Int(77));
    copy.shm().unlink().unwrap();
    // A second handle by name shares the data.
    let tethered = ShareableList::attach(&owned).unwrap();
    assert_eq!(tethered.name(), sl.name());
    tethered.set(6, 880).unwrap();
    assert_eq!(sl.get(6).unwrap(), Item::Int(880));
    sl.shm().unlink().unwrap();
    // …and a dead name cannot be attached (the pickling_dead_object tests).
    assert!(matches!(ShareableList::attach(&owned), Err(ShmError::NotFound { .. })));
    // The empty list.
    let empty = ShareableList::new(Vec::<Item>::new()).unwrap();
    assert_eq!(empty.len(), 0);
    assert!(empty.is_empty());
    assert_eq!(empty.format().unwrap(), "");
    assert_eq!(empty.count("any").unwrap(), 0);
    assert_eq!(empty.index(Item::None).unwrap(), None);
    assert_eq!(empty.to_string(), "ShareableList([], name=None)");
    // Each kind of value, at the edges, and the room of strings of multi-byte characters.
    let edges = vec![
        Item::Int(i64::MIN),
        Item::Float(f64::NEG_INFINITY),
        Item::Bool(false),
        Item::from("ééééé"), // 5 characters, 10 bytes: CPython would keep 8 of them
        Item::from(""),
        Item::Bytes(vec![0xff; 16]),
        Item::None,
    ];
    let sl = ShareableList::new(edges.clone()).unwrap();
    assert_eq!(sl.to_vec().unwrap(), edges);
    assert_eq!(sl.format().unwrap(), "qdxxxxxxx?16s8s24sxxxxxx?x");
    sl.set(5, 1.5).unwrap();
    assert_eq!(sl.format().unwrap(), "qdxxxxxxx?16s8sdxxxxxx?x");
    sl.set(5, "a string in the bytes' room").unwrap_err();
    sl.set(5, "24 bytes, not a byte mo").unwrap();
    assert_eq!(sl.format().unwrap(), "qdxxxxxxx?16s8s24sxxxxxx?x", "the room's format comes back");
    assert_eq!(sl.get(5).unwrap(), Item::from("24 bytes, not a byte mo"));
}

// _TestSharedMemory.test_shared_memory_SharedMemoryManager_basics: lists and segments made by
// a manager can be attached by name elsewhere; after shutdown, or the end of the block (here
// the manager's drop), their names are gone.
fn a_manager_unlinks_what_it_made() {
    let smm = SharedMemoryManager::new();
    let lists: Vec<ShareableList> = (5..10).map(|i| smm.shareable_list(0..i).unwrap()).collect();
    let segments: Vec<SharedMemory> =
        (32..128).step_by(16).map(|j| smm.shared_memory(j).unwrap()).collect();
    let double = ShareableList::attach(lists[0].name().unwrap()).unwrap();
    assert_eq!(double.len(), 5);
    assert_eq!(double.to_vec().unwrap(), (0..5).map(Item::from).collect::<Vec<_>>());
    let held = segments[0].name().unwrap().to_string();
    assert!(held.starts_with("psm_") && held.len() == 12, "{held}");
    assert!(SharedMemory::attach(&held).unwrap().size() >= 32);
    assert_eq!(smm.names().len(), 11);
    // A name someone else unlinked first is skipped.
    segments[1].unlink().unwrap();
    smm.shutdown().unwrap();
    assert!(matches!(SharedMemory::attach(&held), Err(ShmError::NotFound { .. })));
    for made in
        lists.iter().map(|l| l.name().unwrap()).chain(segments.iter().map(|s| s.name().unwrap()))
    {
        assert!(!exists(made), "{made} left behind");
    }
    assert_eq!(smm.shared_memory(9).unwrap_err(), ShmError::ManagerShutDown);
    assert!(matches!(smm.shareable_list([1]), Err(ShmError::ManagerShutDown)));
    smm.shutdown().unwrap();
    // The mappings outlive the names.
    assert_eq!(double.get(4).unwrap(), Item::Int(4));
    let held = {
        let smm = SharedMemoryManager::new();
        let sl = smm.shareable_list("howdy".chars().map(String::from)).unwrap();
        let _shm = smm.shared_memory(128).unwrap();
        sl.name().unwrap().to_string()
    };
    assert!(matches!(ShareableList::attach(&held), Err(ShmError::NotFound { .. })));
    // A forked child that shuts its copy of the manager down unlinks nothing; its owner does.
    let smm = std::sync::Arc::new(SharedMemoryManager::new());
    let shm = smm.shared_memory(64).unwrap();
    let owned = shm.name().unwrap().to_string();
    let mut p = Process::<bool>::new({
        let (smm, owned) = (smm.clone(), owned.clone());
        move || {
            smm.shutdown().unwrap();
            exists(&owned)
        }
    })
    .start_method(StartMethod::Fork);
    p.start().unwrap();
    assert!(p.result().unwrap(), "the child's shutdown unlinked the segment");
    assert!(exists(&owned));
    assert_eq!(smm.names(), std::slice::from_ref(&owned), "the parent's manager is not shut down");
    drop(p);
    drop(smm);
    assert!(!exists(&owned), "the owner's drop unlinks");
}

// The bytes CPython reads and writes: a list made here is read and changed by a Python
// program, which makes a list of its own that is read here.
fn cpython_shares_the_list() {
    let ours = name("to-python");
    let sl = ShareableList::create(
        &ours,
        vec![
            Item::from("howdy pifork"),
            b"\x00\x01".into(),
            2.0.into(),
            7.into(),
            Item::None,
            false.into(),
        ],
    )
    .unwrap();
    let repr_before = sl.to_string();
    let format_before = sl.format().unwrap();
    // CPython 3.8-3.12 registers an attached segment with its resource tracker, which would
    // unlink it when the script ends: the script unregisters both names.
    let script = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, "shared_memory")
print(repr(sl))
print(sl.format)
sl[0] = "from python"
sl[2] = 2.5
sl[4] = -1
mine = shared_memory.ShareableList(["ünï", b"\xff", -7, 1e-05, None, True])
resource_tracker.unregister(mine.shm._name, "shared_memory")
print(mine.shm.name)
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(&ours).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python3 failed: {stderr}");
    assert!(stderr.is_empty(), "python3 warned: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let repr = format!(
        "ShareableList(['howdy pifork', b'\\x00\\x01', 2.0, 7, None, False], name='{ours}')"
    );
    assert_eq!(lines[0], repr, "CPython's repr of our bytes");
    assert_eq!(lines[0], repr_before, "ours says the same");
    assert_eq!(lines[1], format_before);
    assert_eq!(format_before, "16s8sdqxxxxxx?xxxxxxxx?");
    assert_eq!(
        sl.to_vec().unwrap(),
        vec![
            Item::from("from python"),
            b"\x00\x01".into(),
            2.5.into(),
            7.into(),
            (-1).into(),
            false.into()
        ]
    );
    let theirs = lines[2].trim_start_matches('/').to_string();
    let them = ShareableList::attach(&theirs).unwrap();
    them.shm().unlink().unwrap();
    assert_eq!(
        them.to_vec().unwrap(),
        vec![Item::from("ünï"), b"\xff".into(), (-7).into(), 1e-05.into(), Item::None, true.into()]
    );
    assert_eq!(
        them.to_string(),
        format!("ShareableList(['ünï', b'\\xff', -7, 1e-05, None, True], name='{theirs}')")
    );
    sl.shm().unlink().unwrap();
}

// A segment that holds something else is a typed error, not a panic or an absurd list.
fn a_segment_that_is_no_list_is_refused() {
    let shm = SharedMemory::new(64).unwrap();
    shm.write(0, &1_000_000i64.to_ne_bytes()).unwrap();
    assert!(matches!(ShareableList::from_segment(shm.clone()), Err(ShmError::ListCorrupt { .. })));
    shm.write(0, &(-1i64).to_ne_bytes()).unwrap();
    assert!(matches!(ShareableList::from_segment(shm.clone()), Err(ShmError::ListCorrupt { .. })));
    // One item whose offsets run backwards.
    shm.write(0, &[1i64, 0, -8].map(i64::to_ne_bytes).concat()).unwrap();
    assert!(matches!(ShareableList::from_segment(shm.clone()), Err(ShmError::ListCorrupt { .. })));
    // A list whose item's format was overwritten with garbage reads as an error.
    let sl = ShareableList::new([5]).unwrap();
    let formats_at = 8 * 3 + 8;
    sl.shm().write(formats_at, b"zz\0\0\0\0\0\0").unwrap();
    let err = sl.get(0).unwrap_err();
    assert!(matches!(err, ShmError::ListCorrupt { .. }), "{err}");
    sl.shm().write(formats_at, b"99s\0\0\0\0\0").unwrap();
    assert!(
        matches!(sl.get(0), Err(ShmError::ListCorrupt { .. })),
        "a string longer than its room"
    );
    assert!(sl.to_string().contains("<not a readable shareable list"), "{sl}");
    let tiny = SharedMemory::new(4).unwrap();
    assert!(matches!(ShareableList::from_segment(tiny), Err(ShmError::ListCorrupt { .. })));
}

fn a_list_is_shared_with_a_child(m: StartMethod) {
    let sl = ShareableList::new(book_list()).unwrap();
    let fd = sl.as_raw_fd();
    let mut p = child::<String>(LIST_INHERITED, &fd, m, &[fd]);
    let seen = p.result().unwrap();
    assert_eq!(
        seen,
        "ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42], name=None)"
    );
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    assert_eq!(sl.get(0).unwrap(), Item::from("kid"));
    assert_eq!(sl.get(6).unwrap(), Item::Int(880));
    assert_eq!(sl.get(2).unwrap(), Item::Float(-273.154), "the rest untouched");
}

fn a_child_attaches_by_name(m: StartMethod) {
    let owned = name(&format!("list-{m}"));
    let sl = ShareableList::create(&owned, (0..10).map(|i| i * i)).unwrap();
    let mut p = child::<String>(LIST_ATTACH, &owned, m, &[]);
    let seen = p.result().unwrap();
    assert_eq!(
        seen,
        format!("ShareableList([0, 1, 4, 9, 16, 25, 36, 49, 64, 81], name='{owned}')")
    );
    assert_eq!(sl.get(0).unwrap(), Item::from("kid"), "an int's room holds a short string");
    assert_eq!(sl.get(9).unwrap(), Item::Int(880));
    assert_eq!(sl.format().unwrap(), format!("8s{}q", "q".repeat(8)));
    assert!(exists(&owned), "the child's end removed nothing");
    sl.shm().unlink().unwrap();
}

fn a_child_attaches_to_managed(m: StartMethod) {
    let smm = SharedMemoryManager::new();
    let segments: Vec<String> =
        (1..4).map(|k| smm.shared_memory(100 * k).unwrap().name().unwrap().to_string()).collect();
    let lists: Vec<String> =
        (0..3).map(|k| smm.shareable_list(0..k).unwrap().name().unwrap().to_string()).collect();
    let mut p = child::<(Vec<u64>, Vec<u64>)>(MANAGED, &(segments.clone(), lists.clone()), m, &[]);
    assert_eq!(p.result().unwrap(), (vec![100, 200, 300], vec![0, 1, 2]));
    drop(smm);
    assert!(segments.iter().chain(&lists).all(|n| !exists(n)), "the manager's drop unlinks all");
}
