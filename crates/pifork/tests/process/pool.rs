//! `pifork::pool` against CPython's `multiprocessing.Pool` and `concurrent.futures`: the
//! behaviours of `_TestPool`, `_TestPoolWorkerLifetime` and `_TestPoolWorkerErrors`, under each
//! start method, and a pool that survives its workers: SIGKILLed, aborted, hung, recycled.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pifork::pool::{Executor, Func, Next, Pool, PoolError, ReturnWhen, as_completed, wait};
use pifork::{ExitCode, StartMethod};

use crate::common::{Test, alive, emulated, eventually};

const TRIPLE: &str = "pool.triple";
/// Set in the environment of the helper that plays a parent SIGKILLed with a pool.
const ORPHAN_ENV: &str = "PIFORK_POOL_ORPHAN";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(TRIPLE, |x: u64| x * 3);
}

/// The helper program for `parent_killed_takes_the_workers_along`: starts a pool, prints its
/// workers' pids and waits to be killed.
pub fn orphan_helper() {
    if std::env::var_os(ORPHAN_ENV).is_none() || std::env::var_os("PIFORK_SPAWN").is_some() {
        return;
    }
    let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build().unwrap();
    let pids: Vec<String> = pool.pids().iter().map(|p| p.as_raw().to_string()).collect();
    println!("{}", pids.join(" "));
    let _ = pool.apply_async(sleep_ms, 600_000u64);
    std::thread::sleep(Duration::from_secs(600));
}

pub const TESTS: &[Test] = &[
    Test::EachMethod("apply_and_apply_async", apply_and_apply_async),
    Test::EachMethod("map_keeps_order_with_any_chunksize", map_keeps_order_with_any_chunksize),
    Test::EachMethod("starmap_unpacks_tuples", starmap_unpacks_tuples),
    Test::EachMethod("map_async_and_callbacks", map_async_and_callbacks),
    Test::EachMethod("imap_is_ordered_and_lazy", imap_is_ordered_and_lazy),
    Test::EachMethod("imap_unordered_gives_each_once", imap_unordered_gives_each_once),
    Test::EachMethod("async_timeout_and_successful", async_timeout_and_successful),
    Test::EachMethod("a_panic_is_that_tasks_error", a_panic_is_that_tasks_error),
    Test::EachMethod("entries_run_by_name", entries_run_by_name),
    Test::EachMethod("maxtasksperchild_recycles_workers", maxtasksperchild_recycles_workers),
    Test::EachMethod("initializer_runs_in_every_worker", initializer_runs_in_every_worker),
    Test::EachMethod("a_killed_worker_is_replaced_and_retried", a_killed_worker_is_replaced),
    Test::EachMethod("a_task_that_always_dies_fails_alone", a_task_that_always_dies_fails_alone),
    Test::EachMethod("only_unfinished_items_of_a_chunk_rerun", only_unfinished_items_rerun),
    Test::EachMethod("task_timeout_kills_and_replaces", task_timeout_kills_and_replaces),
    Test::EachMethod("terminate_reaps_every_worker", terminate_reaps_every_worker),
    Test::EachMethod("close_and_join_rules", close_and_join_rules),
    Test::EachMethod("executor_futures", executor_futures),
    Test::EachMethod("tasks_come_back_in_finish_order", tasks_come_back_in_finish_order),
    Test::EachMethod("tasks_tell_what_runs_and_a_kill_settles_it", tasks_running_and_kill),
    Test::EachMethod("prefetched_tasks_survive_their_workers_death", prefetched_survive_death),
    Test::Once("next_with_watches_the_callers_descriptors", next_with_watches_descriptors),
    Test::Once("build_watching_can_give_up", build_watching_can_give_up),
    Test::EachMethod("a_worker_never_ready_is_replaced", a_worker_never_ready_is_replaced),
    Test::EachMethod("sharing_objects_reach_the_initializer", sharing_objects_reach_initializer),
    Test::EachMethod(
        "every_kind_of_object_reaches_the_initializer",
        every_kind_reaches_initializer,
    ),
    Test::Once("a_pinned_replacement_takes_its_predecessors_cpu", pinned_replacement_keeps_cpu),
    Test::EachMethod("a_standby_takes_a_leaving_workers_place", a_standby_takes_the_place),
    Test::Once("a_pinned_standby_takes_its_predecessors_cpu", pinned_standby_takes_the_cpu),
    Test::Once("bad_input_is_a_typed_error", bad_input_is_a_typed_error),
    Test::Once("closures_with_state_run_on_forked_workers", closures_with_state),
    Test::Once("parent_killed_takes_the_workers_along", parent_killed_takes_the_workers_along),
];

fn sqr(x: u64) -> u64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn add((a, b): (u64, u64)) -> u64 {
    a + b
}

fn pid_of(_: ()) -> i32 {
    std::process::id() as i32
}

fn panics_on_odd(x: u64) -> u64 {
    if x % 2 == 1 {
        panic!("odd {x}");
    }
    x
}

/// Dies by SIGKILL on 13, by abort on 14, else squares.
fn dies_on_13(x: u64) -> u64 {
    match x {
        13 => {
            let _ =
                nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
            std::thread::sleep(Duration::from_secs(10));
            0
        }
        14 => std::process::abort(),
        _ => x * x,
    }
}

fn pool(m: StartMethod, n: usize) -> Pool {
    Pool::builder().processes(n).start_method(m).build().unwrap()
}

fn apply_and_apply_async(m: StartMethod) {
    let p = pool(m, 2);
    assert_eq!(p.apply(sqr, 5).unwrap(), 25);
    assert_eq!(p.apply(add, (3, 4)).unwrap(), 7);
    let r = p.apply_async(|x: u64| x + 1, 41).unwrap();
    assert_eq!(r.get(None).unwrap(), 42);
    assert!(r.ready() && r.successful().unwrap());
}

fn map_keeps_order_with_any_chunksize(m: StartMethod) {
    let p = pool(m, 3);
    let want: Vec<u64> = (0..1000).map(|x| x * x).collect();
    assert_eq!(p.map(sqr, 0..1000u64).unwrap(), want);
    for chunk in [1, 7, 100, 5000] {
        assert_eq!(p.map_chunked(sqr, 0..1000u64, Some(chunk)).unwrap(), want, "{chunk}");
    }
    assert_eq!(p.map(sqr, Vec::<u64>::new()).unwrap(), Vec::<u64>::new());
    // Arguments of one size, values of changing sizes, within one chunk and across chunks.
    let want: Vec<Option<u64>> = (0..1000).map(some_unless_3).collect();
    for chunk in [1, 7, 1000] {
        assert_eq!(p.map_chunked(some_unless_3, 0..1000u64, Some(chunk)).unwrap(), want);
    }
}

fn some_unless_3(x: u64) -> Option<u64> {
    (!x.is_multiple_of(3)).then_some(x)
}

fn starmap_unpacks_tuples(m: StartMethod) {
    let p = pool(m, 2);
    let items: Vec<(u64, u64)> = (0..20).map(|i| (i, 2 * i)).collect();
    assert_eq!(p.starmap(add, items).unwrap(), (0..20).map(|i| 3 * i).collect::<Vec<u64>>());
}

fn map_async_and_callbacks(m: StartMethod) {
    let p = pool(m, 2);
    let got = Arc::new(Mutex::new(None));
    let g = got.clone();
    let r = p
        .map_async_with(
            Func::new(sqr),
            0..10u64,
            None,
            Some(move |v: Vec<u64>| *g.lock().unwrap() = Some(v)),
            None::<fn(PoolError)>,
        )
        .unwrap();
    assert_eq!(r.get(None).unwrap(), (0..10).map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(got.lock().unwrap().as_ref().map(Vec::len), Some(10), "callback ran in the parent");
    let err = Arc::new(Mutex::new(None));
    let e = err.clone();
    let r = p
        .apply_func(
            Func::new(panics_on_odd),
            3,
            None::<fn(u64)>,
            Some(move |x: PoolError| *e.lock().unwrap() = Some(x)),
        )
        .unwrap();
    assert!(r.wait(None).unwrap());
    assert_eq!(*err.lock().unwrap(), Some(PoolError::TaskPanicked("odd 3".into())));
    assert!(!r.successful().unwrap());
}

fn imap_is_ordered_and_lazy(m: StartMethod) {
    let p = pool(m, 2);
    let got: Vec<u64> = p.imap(sqr, 0..200u64).unwrap().map(Result::unwrap).collect();
    assert_eq!(got, (0..200).map(|x| x * x).collect::<Vec<_>>());
    // An endless input: only what is needed is taken.
    let mut it = p.imap(sqr, 0u64..).unwrap();
    for i in 0..50u64 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    let mut chunked = p.imap_func(Func::new(sqr), 0..100u64, 9, true).unwrap();
    assert_eq!(chunked.next_timeout(None).unwrap().unwrap().unwrap(), 0);
    assert_eq!(chunked.count(), 99);
}

fn imap_unordered_gives_each_once(m: StartMethod) {
    let p = pool(m, 2);
    let items: Vec<u64> = (0..20).map(|i| (i * 7) % 5 * 20).collect();
    let mut got: Vec<u64> =
        p.imap_unordered(sleep_ms, items.clone()).unwrap().map(Result::unwrap).collect();
    got.sort_unstable();
    let mut want = items;
    want.sort_unstable();
    assert_eq!(got, want);
}

fn async_timeout_and_successful(m: StartMethod) {
    let p = pool(m, 1);
    let r = p.apply_async(sleep_ms, 800).unwrap();
    assert_eq!(r.get(Some(Duration::from_millis(50))), Err(PoolError::Timeout));
    assert_eq!(r.successful(), Err(PoolError::NotReady));
    assert!(!r.ready());
    assert_eq!(r.get(None).unwrap(), 800);
    assert!(r.successful().unwrap());
    let mut it = p.imap(sleep_ms, vec![800u64]).unwrap();
    assert!(matches!(it.next_timeout(Some(Duration::from_millis(50))), Err(PoolError::Timeout)));
    assert_eq!(it.next_timeout(None).unwrap().unwrap().unwrap(), 800);
}

fn a_panic_is_that_tasks_error(m: StartMethod) {
    let p = pool(m, 2);
    let before = p.pids();
    let each =
        p.map_async(Func::new(panics_on_odd), 0..10u64, Some(3)).unwrap().get_each(None).unwrap();
    for (i, r) in each.iter().enumerate() {
        if i % 2 == 1 {
            assert_eq!(r, &Err(PoolError::TaskPanicked(format!("odd {i}"))));
        } else {
            assert_eq!(r, &Ok(i as u64));
        }
    }
    assert_eq!(p.map(panics_on_odd, 0..4u64), Err(PoolError::TaskPanicked("odd 1".into())));
    assert_eq!(p.pids(), before, "workers live on after a panic");
    // Panics deep in long chunks (values are written in blocks): every neighbour's value
    // stays, before and after each panic, in every block.
    let each = p
        .map_async(Func::new(panics_on_thousands), 0..9000u64, Some(4500))
        .unwrap()
        .get_each(None)
        .unwrap();
    for (i, r) in each.iter().enumerate() {
        match i % 1000 {
            0 if i > 0 => assert_eq!(r, &Err(PoolError::TaskPanicked(format!("at {i}")))),
            _ => assert_eq!(r, &Ok(3 * i as u64), "item {i}"),
        }
    }
}

fn panics_on_thousands(x: u64) -> u64 {
    if x > 0 && x.is_multiple_of(1000) {
        panic!("at {x}");
    }
    3 * x
}

fn entries_run_by_name(m: StartMethod) {
    let p = pool(m, 2);
    let r = p.map_async(Func::<u64, u64>::entry(TRIPLE), 0..5u64, None).unwrap();
    assert_eq!(r.get(None).unwrap(), vec![0, 3, 6, 9, 12]);
    let e = p.apply_func(
        Func::<u64, u64>::entry("pool.missing"),
        1,
        None::<fn(u64)>,
        None::<fn(PoolError)>,
    );
    assert!(matches!(e, Err(PoolError::UnknownEntry(name)) if name == "pool.missing"));
}

fn maxtasksperchild_recycles_workers(m: StartMethod) {
    // CPython: the pids of the workers change, the results do not.
    let p = Pool::builder().processes(2).start_method(m).maxtasksperchild(5).build().unwrap();
    let first = p.pids();
    let r = p.map_chunked(sqr, 0..100u64, Some(2)).unwrap();
    assert_eq!(r, (0..100).map(|x| x * x).collect::<Vec<_>>());
    let seen: std::collections::BTreeSet<i32> =
        p.map_chunked(pid_of, vec![(); 40], Some(1)).unwrap().into_iter().collect();
    assert!(seen.iter().all(|pid| !first.iter().any(|f| f.as_raw() == *pid)));
    assert!(seen.len() >= 4, "40 tasks at 5 per worker need new workers: {seen:?}");
    p.close().unwrap();
    p.join().unwrap();
    assert!(first.iter().all(|pid| !alive(pid.as_raw())));
}

fn set_marker(v: u64) {
    MARK.store(v, std::sync::atomic::Ordering::Relaxed);
}

static MARK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn read_marker(_: ()) -> u64 {
    MARK.load(std::sync::atomic::Ordering::Relaxed)
}

fn initializer_runs_in_every_worker(m: StartMethod) {
    let p =
        Pool::builder().processes(2).start_method(m).initializer(set_marker, 77).build().unwrap();
    assert_eq!(p.map_chunked(read_marker, vec![(); 8], Some(1)).unwrap(), vec![77; 8]);
    let bad =
        Pool::builder().processes(1).start_method(m).initializer(|_: u8| panic!("no"), 0u8).build();
    assert!(matches!(bad.err(), Some(PoolError::InitializerFailed(msg)) if msg == "no"));
}

fn a_killed_worker_is_replaced(m: StartMethod) {
    let p = pool(m, 2);
    let r = p.apply_async(sleep_ms, 1500).unwrap();
    // Whichever worker got it: kill both once it has started.
    std::thread::sleep(Duration::from_millis(300));
    let before = p.pids();
    let victim = before[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim.as_raw()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The pool goes on: the task (retried if it was the victim's) and new ones complete.
    assert_eq!(r.get(None).unwrap(), 1500);
    assert_eq!(p.map(sqr, 0..50u64).unwrap(), (0..50).map(|x| x * x).collect::<Vec<_>>());
    let after = p.pids();
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&victim), "the dead worker was replaced");
    assert!(eventually(Duration::from_secs(5), || !alive(victim.as_raw())), "and reaped");
}

fn a_task_that_always_dies_fails_alone(m: StartMethod) {
    let p = Pool::builder().processes(2).start_method(m).retries(2).build().unwrap();
    let each =
        p.map_async(Func::new(dies_on_13), 0..30u64, Some(1)).unwrap().get_each(None).unwrap();
    for (i, r) in each.iter().enumerate() {
        match i {
            13 => assert!(
                matches!(
                    r,
                    Err(PoolError::WorkerDied { attempts: 3, exitcode: ExitCode::Signaled(9), .. })
                ),
                "{r:?}"
            ),
            14 => assert!(
                matches!(
                    r,
                    Err(PoolError::WorkerDied { attempts: 3, exitcode: ExitCode::Signaled(6), .. })
                ),
                "{r:?}"
            ),
            _ => assert_eq!(r, &Ok((i * i) as u64)),
        }
    }
    assert_eq!(p.pids().len(), 2);
}

fn only_unfinished_items_rerun(m: StartMethod) {
    // One chunk: items before 13 are reported as they finish, then 13 kills the worker.
    let p = Pool::builder()
        .processes(1)
        .start_method(m)
        .retries(0)
        .task_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let each =
        p.map_async(Func::new(dies_on_13), 10..16u64, Some(6)).unwrap().get_each(None).unwrap();
    assert_eq!(each[0..3], [Ok(100), Ok(121), Ok(144)]);
    assert!(matches!(each[3], Err(PoolError::WorkerDied { attempts: 1, .. })));
    assert!(matches!(each[4], Err(PoolError::WorkerDied { attempts: 1, .. })));
    assert_eq!(each[5], Ok(225));
}

fn task_timeout_kills_and_replaces(m: StartMethod) {
    let limit = if emulated() { 3000 } else { 500 };
    let p = Pool::builder()
        .processes(2)
        .start_method(m)
        .task_timeout(Duration::from_millis(limit))
        .build()
        .unwrap();
    let pids = p.pids();
    let each = p
        .map_async(Func::new(sleep_ms), vec![1, 60_000, 2, 3], Some(1))
        .unwrap()
        .get_each(None)
        .unwrap();
    assert_eq!(each[0], Ok(1));
    assert!(matches!(each[1], Err(PoolError::TaskTimedOut { .. })), "{:?}", each[1]);
    assert_eq!(each[2..], [Ok(2), Ok(3)]);
    assert_eq!(p.pids().len(), 2);
    assert_ne!(p.pids(), pids);
}

fn terminate_reaps_every_worker(m: StartMethod) {
    let p = pool(m, 3);
    let r = p.map_async(Func::new(sleep_ms), vec![5000u64; 6], Some(1)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pids = p.pids();
    let start = Instant::now();
    p.terminate().unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(if emulated() { 10 } else { 1 }), "{took:?}");
    for pid in &pids {
        assert!(crate::common::stat(pid.as_raw()).is_none(), "{pid} is gone, no zombie");
    }
    assert_eq!(r.get(None), Err(PoolError::Terminated));
    assert!(matches!(p.apply_async(sqr, 1), Err(PoolError::NotRunning)));
    p.join().unwrap();
    // Drop terminates too.
    let q = pool(m, 2);
    let pids = q.pids();
    let _pending = q.apply_async(sleep_ms, 5000).unwrap();
    drop(q);
    assert!(pids.iter().all(|pid| crate::common::stat(pid.as_raw()).is_none()));
}

fn close_and_join_rules(m: StartMethod) {
    let p = pool(m, 2);
    assert_eq!(p.join(), Err(PoolError::StillRunning), "join before close");
    let r = p.map_async(Func::new(sleep_ms), vec![100u64; 4], None).unwrap();
    p.close().unwrap();
    assert!(matches!(p.apply_async(sqr, 1), Err(PoolError::NotRunning)));
    assert!(matches!(p.map(sqr, 0..3u64), Err(PoolError::NotRunning)));
    p.join().unwrap();
    assert_eq!(
        r.get(Some(Duration::ZERO)).unwrap(),
        vec![100; 4],
        "work submitted before close is done"
    );
    assert!(p.pids().is_empty());
}

fn executor_futures(m: StartMethod) {
    let mut ex = Executor::builder().max_workers(2).pool(|b| b.start_method(m)).build().unwrap();
    let fs: Vec<_> = [600u64, 10, 300].iter().map(|&ms| ex.submit(sleep_ms, ms).unwrap()).collect();
    let order: Vec<usize> = as_completed(&fs, None).map(Result::unwrap).collect();
    assert_eq!(order.len(), 3);
    assert_eq!(order[0], 1);
    assert!(fs.iter().all(|f| f.done()));
    assert_eq!(fs[0].result(None).unwrap(), 600);
    let slow = ex.submit(sleep_ms, 1500).unwrap();
    let fast = ex.submit(sqr, 3).unwrap();
    let both = [slow, fast];
    let (done, not_done) = wait(&both, ReturnWhen::FirstCompleted, None).unwrap();
    assert_eq!((done, not_done), (vec![1], vec![0]));
    assert_eq!(both[1].result(None).unwrap(), 9);
    assert_eq!(both[0].result(Some(Duration::from_millis(10))), Err(PoolError::Timeout));
    let (done, _) = wait(&both, ReturnWhen::AllCompleted, None).unwrap();
    assert_eq!(done, vec![0, 1]);
    let bad = [ex.submit(panics_on_odd, 1).unwrap(), ex.submit(sleep_ms, 2000).unwrap()];
    let (done, not_done) = wait(&bad, ReturnWhen::FirstException, None).unwrap();
    assert_eq!((done, not_done), (vec![0], vec![1]));
    assert_eq!(bad[0].exception(None).unwrap(), Some(PoolError::TaskPanicked("odd 1".into())));
    assert_eq!(bad[1].exception(None).unwrap(), None);
    let got: Vec<u64> = ex.map(sqr, 0..10u64).unwrap().map(Result::unwrap).collect();
    assert_eq!(got, (0..10).map(|x| x * x).collect::<Vec<_>>());
    // Cancel what has not started: two long ones occupy the workers, the third waits.
    let busy: Vec<_> = (0..2).map(|_| ex.submit(sleep_ms, 400).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut waiting: Vec<_> = Vec::new();
    for _ in 0..40 {
        waiting.push(ex.submit(sleep_ms, 400).unwrap());
    }
    assert!(waiting.last().unwrap().cancel());
    assert!(waiting.last().unwrap().cancelled());
    assert_eq!(waiting.last().unwrap().result(None), Err(PoolError::Cancelled));
    ex.shutdown(true, true).unwrap();
    assert!(busy.iter().all(|f| f.result(None) == Ok(400)));
    assert!(waiting.iter().any(|f| f.cancelled()));
    assert!(matches!(ex.submit(sqr, 1), Err(PoolError::NotRunning)));
}

fn bad_input_is_a_typed_error() {
    assert!(matches!(Pool::new(0), Err(PoolError::NoProcesses)));
    assert!(matches!(Executor::new(0), Err(PoolError::NoProcesses)));
    let n = 7u64;
    for m in [StartMethod::Spawn, StartMethod::Forkserver] {
        let p = pool(m, 1);
        assert_eq!(p.apply(move |x: u64| x + n, 1), Err(PoolError::ClosureNeedsFork { method: m }));
        assert_eq!(p.apply(|x: u64| x + 1, 1), Ok(2), "a closure without state travels");
    }
    let p = Pool::new(2).unwrap();
    assert_eq!(p.processes(), 2);
    assert!(Pool::builder().build().unwrap().processes() == pifork::cpu_count());
}

fn closures_with_state() {
    let p = pool(StartMethod::Fork, 2);
    let old = p.pids();
    let offset = 1000u64;
    let table: Vec<u64> = (0..10).map(|i| i * 11).collect();
    let got = p.map(move |i: u64| table[i as usize] + offset, 0..10u64).unwrap();
    assert_eq!(got, (0..10).map(|i| i * 11 + 1000).collect::<Vec<_>>());
    // Only a worker forked after the closure has it: one at least was replaced to run it (an
    // idle older one is retired only when the job still waits for a worker).
    assert!(p.pids().iter().any(|pid| !old.contains(pid)), "a worker forked after the closure");
    let s = String::from("captured");
    assert_eq!(p.apply(move |(): ()| s.clone(), ()).unwrap(), "captured");
}

fn parent_killed_takes_the_workers_along() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ORPHAN_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let pids: Vec<i32> = line.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{line:?}");
    assert!(pids.iter().all(|&p| alive(p)));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(eventually(Duration::from_secs(10), || pids.iter().all(|&p| !alive(p))));
}

fn tasks_come_back_in_finish_order(m: StartMethod) {
    let p = pool(m, 3);
    let mut tasks = p.tasks(sleep_ms).unwrap();
    let slow = if emulated() { 3000 } else { 600 };
    for (i, ms) in [slow, 10, slow / 3].into_iter().enumerate() {
        assert_eq!(tasks.submit(&ms).unwrap(), i);
    }
    assert_eq!(tasks.pending(), 3);
    let mut order = Vec::new();
    while let Some((i, r)) = tasks.next_timeout(None).unwrap() {
        assert_eq!(r.unwrap(), [slow, 10, slow / 3][i]);
        order.push(i);
    }
    assert_eq!(order, vec![1, 2, 0]);
    assert_eq!(tasks.pending(), 0);
    assert_eq!(tasks.next_timeout(Some(Duration::ZERO)).unwrap(), None, "nothing pending");
    tasks.submit(&60_000).unwrap();
    assert_eq!(tasks.next_timeout(Some(Duration::from_millis(50))), Err(PoolError::Timeout));
    p.terminate().unwrap();
    assert!(matches!(tasks.submit(&1), Err(PoolError::NotRunning)));
}

fn tasks_running_and_kill(m: StartMethod) {
    let p = Pool::builder().processes(2).start_method(m).retries(0).build().unwrap();
    let mut tasks = p.tasks(sleep_ms).unwrap();
    let start = Instant::now();
    tasks.submit(&60_000).unwrap();
    assert!(eventually(Duration::from_secs(10), || tasks.running().len() == 1));
    let running = tasks.running()[0];
    assert_eq!(running.index, 0);
    assert!(p.pids().contains(&running.pid));
    assert!(running.since >= start);
    assert!(!p.kill_worker(pifork::current_process().pid), "no such worker");
    assert!(p.kill_worker(running.pid));
    match tasks.next_timeout(Some(Duration::from_secs(30))).unwrap() {
        Some((0, Err(PoolError::WorkerDied { pid, exitcode, attempts: 1 }))) => {
            assert_eq!(pid, running.pid);
            assert_eq!(exitcode, ExitCode::Signaled(9));
        }
        other => panic!("{other:?}"),
    }
    assert!(tasks.running().is_empty());
    assert_eq!(p.pids().len(), 2, "replaced");
    assert!(!p.pids().contains(&running.pid));
    tasks.submit(&5).unwrap();
    assert!(matches!(tasks.next_timeout(None).unwrap(), Some((1, Ok(5)))));
}

fn prefetched_survive_death(m: StartMethod) {
    // One worker holding two long tasks: killed on the first, the second (sent, not started)
    // runs on its replacement, and only the first is charged.
    let p = Pool::builder().processes(1).start_method(m).retries(0).prefetch(2).build().unwrap();
    let mut tasks = p.tasks(sleep_ms).unwrap();
    tasks.submit(&60_000).unwrap();
    tasks.submit(&300).unwrap();
    assert!(eventually(Duration::from_secs(10), || !tasks.running().is_empty()));
    let running = tasks.running();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].index, 0);
    assert!(p.kill_worker(running[0].pid));
    let mut got = Vec::new();
    while let Some((i, r)) = tasks.next_timeout(Some(Duration::from_secs(30))).unwrap() {
        got.push((i, r));
    }
    assert!(matches!(got[0], (0, Err(PoolError::WorkerDied { attempts: 1, .. }))), "{got:?}");
    assert_eq!(got[1], (1, Ok(300)));
    assert_eq!(got.len(), 2);
}

fn next_with_watches_descriptors() {
    let p =
        Pool::builder().processes(1).start_method(StartMethod::Fork).retries(0).build().unwrap();
    let mut tasks = p.tasks(sleep_ms).unwrap();
    let (r, w) = nix::unistd::pipe().unwrap();
    use std::os::fd::AsFd;
    // Nothing readable, nothing done: the timeout.
    tasks.submit(&60_000).unwrap();
    assert!(matches!(
        tasks.next_with(&[r.as_fd()], Some(Duration::from_millis(50))),
        Ok(Next::Timeout)
    ));
    nix::unistd::write(&w, b"x").unwrap();
    match tasks.next_with(&[r.as_fd()], None) {
        Ok(Next::Ready(ready)) => assert_eq!(ready, vec![0]),
        other => panic!("{other:?}"),
    }
    // Level-triggered: still readable, reported again.
    assert!(matches!(tasks.next_with(&[r.as_fd()], None), Ok(Next::Ready(_))));
    let mut buf = [0u8; 1];
    nix::unistd::read(&r, &mut buf).unwrap();
    let running = tasks.running()[0];
    p.kill_worker(running.pid);
    // A finished task comes first, even with the descriptor readable again.
    nix::unistd::write(&w, b"y").unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        matches!(
            tasks.next_with(&[r.as_fd()], Some(Duration::from_millis(100))),
            Ok(Next::Done(0, Err(_)))
        )
    }));
    assert!(matches!(tasks.next_with(&[], None), Ok(Next::Idle)));
}

fn build_watching_can_give_up() {
    let (r, w) = nix::unistd::pipe().unwrap();
    use std::os::fd::AsFd;
    let mut asked = 0;
    let built = Pool::builder().processes(2).start_method(StartMethod::Fork).build_watching(
        r.as_fd(),
        &mut || {
            asked += 1;
            false
        },
    );
    assert_eq!(built.unwrap().processes(), 2);
    assert_eq!(asked, 0, "not asked while nothing is readable");
    nix::unistd::write(&w, b"x").unwrap();
    let mut asked = 0;
    let built = Pool::builder().processes(3).start_method(StartMethod::Spawn).build_watching(
        r.as_fd(),
        &mut || {
            asked += 1;
            true
        },
    );
    assert!(matches!(built, Err(PoolError::Interrupted)));
    assert_eq!(asked, 1);
    // The runner checks that no worker started meanwhile is left, running or zombie.
}

/// The CPUs process `pid` may run on, from `/proc`.
fn allowed_cpus(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
    line.split(':').nth(1).unwrap().trim().to_string()
}

fn pinned_replacement_keeps_cpu() {
    let cpus = pifork::available_cpus();
    if cpus.len() < 2 {
        // With one CPU every worker is on it: nothing to tell apart.
        return;
    }
    let set = [cpus[0], cpus[1]];
    let p = Pool::builder()
        .processes(3)
        .start_method(StartMethod::Fork)
        .cpus(set)
        .pin(true)
        .build()
        .unwrap();
    let on = |p: &Pool| -> Vec<String> {
        let mut v: Vec<String> = p.pids().iter().map(|pid| allowed_cpus(pid.as_raw())).collect();
        v.sort();
        v
    };
    let first = set[0].to_string();
    let second = set[1].to_string();
    let mut want = vec![first.clone(), first.clone(), second];
    want.sort();
    assert_eq!(on(&p), want);
    // Kill one of the two on the first CPU: its replacement goes there, not round the set.
    let victim = *p.pids().iter().find(|pid| allowed_cpus(pid.as_raw()) == first).unwrap();
    assert!(p.kill_worker(victim));
    // A new worker pins itself as it starts: wait for it to have.
    let settled = eventually(Duration::from_secs(30), || {
        let _ = p.apply(sqr, 1);
        !p.pids().contains(&victim) && p.pids().len() == 3 && on(&p) == want
    });
    assert!(settled, "{:?}, want {want:?}", on(&p));
}

// A standby is started with the pool and sent nothing; when a worker is killed mid-task the
// standby takes its place (no other process is started for it), the task completes, and a
// new standby is started once the pool has a worker with nothing to do. Recycled workers are
// replaced from it too; close and join let it leave; terminate reaps it.
fn a_standby_takes_the_place(m: StartMethod) {
    let p = Pool::builder().processes(2).start_method(m).standby(true).build().unwrap();
    let spare = p.standby_pid().expect("a standby starts with the pool");
    let first = p.pids();
    assert_eq!(first.len(), 2);
    assert!(!first.contains(&spare), "the standby is not one of the workers");
    let seen: std::collections::BTreeSet<i32> =
        p.map_chunked(pid_of, vec![(); 40], Some(1)).unwrap().into_iter().collect();
    assert!(seen.iter().all(|pid| first.iter().any(|f| f.as_raw() == *pid)), "{seen:?}");
    let limit = Duration::from_secs(if emulated() { 30 } else { 5 });
    let mut tasks = p.tasks(sleep_ms).unwrap();
    tasks.submit(&1500).unwrap();
    assert!(eventually(limit, || tasks.running().len() == 1));
    let victim = tasks.running()[0].pid;
    assert!(p.kill_worker(victim));
    assert!(matches!(tasks.next_timeout(None).unwrap(), Some((0, Ok(1500)))), "retried");
    drop(tasks);
    let mut want: Vec<_> = first.iter().copied().filter(|&pid| pid != victim).collect();
    want.push(spare);
    want.sort_by_key(|pid| pid.as_raw());
    let mut now = p.pids();
    now.sort_by_key(|pid| pid.as_raw());
    assert_eq!(now, want, "the standby took the dead worker's place");
    assert!(eventually(limit, || !alive(victim.as_raw())), "the dead one is reaped");
    let mut next = None;
    assert!(
        eventually(limit, || {
            let _ = p.apply(sqr, 1);
            next = p.standby_pid();
            next.is_some()
        }),
        "a new standby is started"
    );
    let next = next.unwrap();
    assert!(next != spare && !p.pids().contains(&next));
    assert_eq!(p.map(sqr, 0..50u64).unwrap(), (0..50).map(|x| x * x).collect::<Vec<_>>());
    p.close().unwrap();
    p.join().unwrap();
    assert!(eventually(limit, || !alive(next.as_raw())), "the standby left at join");
    // Recycled workers: results unaffected; terminate reaps the standby.
    let q = Pool::builder()
        .processes(2)
        .start_method(m)
        .standby(true)
        .maxtasksperchild(5)
        .build()
        .unwrap();
    let seen: std::collections::BTreeSet<i32> =
        q.map_chunked(pid_of, vec![(); 40], Some(1)).unwrap().into_iter().collect();
    assert!(seen.len() >= 8, "40 tasks at 5 per worker: {seen:?}");
    assert_eq!(
        q.map_chunked(sqr, 0..100u64, Some(2)).unwrap(),
        (0..100).map(|x| x * x).collect::<Vec<_>>()
    );
    let mut all = q.pids();
    all.extend(q.standby_pid());
    q.terminate().unwrap();
    assert!(all.iter().all(|pid| crate::common::stat(pid.as_raw()).is_none()), "{all:?} reaped");
}

// On a pinned pool the standby runs on the pool's set until it takes a place; then it is
// pinned to the CPU of the worker it replaces.
fn pinned_standby_takes_the_cpu() {
    let cpus = pifork::available_cpus();
    if cpus.len() < 2 {
        return;
    }
    let set = [cpus[0], cpus[1]];
    let p = Pool::builder()
        .processes(2)
        .start_method(StartMethod::Fork)
        .cpus(set)
        .pin(true)
        .standby(true)
        .build()
        .unwrap();
    let spare = p.standby_pid().unwrap();
    let mut on: Vec<String> = p.pids().iter().map(|pid| allowed_cpus(pid.as_raw())).collect();
    on.sort();
    assert_eq!(on, [set[0].to_string(), set[1].to_string()]);
    let both = allowed_cpus(spare.as_raw());
    assert!(both.contains(&set[0].to_string()) && both.contains(&set[1].to_string()), "{both}");
    let second = set[1].to_string();
    let victim = *p.pids().iter().find(|pid| allowed_cpus(pid.as_raw()) == second).unwrap();
    assert!(p.kill_worker(victim));
    let settled = eventually(Duration::from_secs(30), || {
        let _ = p.apply(sqr, 1);
        p.pids().contains(&spare)
    });
    assert!(settled, "the standby took the place");
    assert_eq!(allowed_cpus(spare.as_raw()), second, "pinned to its predecessor's CPU");
}

/// Hangs in the first worker that runs it (the one that creates `path`).
fn hang_once(path: String) {
    if std::fs::OpenOptions::new().write(true).create_new(true).open(&path).is_ok() {
        std::thread::sleep(Duration::from_secs(600));
    }
}

fn a_worker_never_ready_is_replaced(m: StartMethod) {
    let limit = Duration::from_millis(if emulated() { 5000 } else { 500 });
    let marker = std::env::temp_dir().join(format!("pifork-hang-{}-{m}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let path = marker.to_string_lossy().into_owned();
    // One worker hangs in its initializer: killed past the limit, replaced, the pool works.
    let p = Pool::builder()
        .processes(2)
        .start_method(m)
        .start_timeout(limit)
        .initializer(hang_once, path)
        .build()
        .unwrap();
    assert!(marker.exists());
    assert_eq!(p.map(sqr, 0..20u64).unwrap(), (0..20).map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(p.pids().len(), 2);
    drop(p);
    std::fs::remove_file(&marker).unwrap();
    // Every worker hangs: the start gives up rather than wait forever.
    let start = Instant::now();
    let built = Pool::builder()
        .processes(2)
        .start_method(m)
        .start_timeout(limit)
        .initializer(|ms: u64| std::thread::sleep(Duration::from_millis(ms)), 600_000)
        .build();
    assert_eq!(built.err(), Some(PoolError::StartTimedOut { timeout: limit }));
    assert!(start.elapsed() < limit * 20, "{:?}", start.elapsed());
}

/// What the sharing test's workers hold: a lock, a counter, a queue and a semaphore.
type Shared = (pifork::Lock, pifork::Value<u64>, pifork::Queue<u64>, pifork::Semaphore);

thread_local! {
    /// What `claim_shared` took in this worker.
    static SHARED: std::cell::RefCell<Option<Shared>> = const { std::cell::RefCell::new(None) };
}

/// The initializer: claims the lock, the counter, the queue and the semaphore it was given.
fn claim_shared((lock, value, queue, sem): (i32, i32, i32, i32)) {
    let held = (
        pifork::Lock::from_inherited(lock).unwrap(),
        pifork::Value::<u64>::from_inherited(value).unwrap(),
        pifork::Queue::<u64>::from_inherited(queue).unwrap(),
        pifork::Semaphore::from_inherited(sem).unwrap(),
    );
    SHARED.with(|s| *s.borrow_mut() = Some(held));
}

/// A task using them: the counter bumped under the lock (a read, a pause, a write: without the
/// lock, increments are lost), `x` put on the queue, the semaphore released once.
fn use_shared(x: u64) -> u64 {
    SHARED.with(|s| {
        let s = s.borrow();
        let (lock, value, queue, sem) = s.as_ref().expect("the initializer ran");
        {
            let _held = lock.lock();
            let seen = value.get();
            std::thread::yield_now();
            value.set(seen + 1);
        }
        queue.put(&x).unwrap();
        sem.release().unwrap();
    });
    x
}

/// The other kinds, as `claim_every_kind` takes them in a worker.
struct Kinds {
    rlock: pifork::RLock,
    event: pifork::Event,
    array: pifork::Array<u64>,
    shm: pifork::SharedMemory,
    joinable: pifork::JoinableQueue<u64>,
    simple: pifork::SimpleQueue<u64>,
    bounded: pifork::BoundedSemaphore,
    cond: pifork::Condition,
    barrier: pifork::Barrier,
}

thread_local! {
    /// What `claim_every_kind` took in this worker.
    static KINDS: std::cell::RefCell<Option<Kinds>> = const { std::cell::RefCell::new(None) };
}

/// The initializer of the second test: claims one object of every other kind.
fn claim_every_kind(fds: Vec<i32>) {
    let kinds = Kinds {
        rlock: pifork::RLock::from_inherited(fds[0]).unwrap(),
        event: pifork::Event::from_inherited(fds[1]).unwrap(),
        array: pifork::Array::from_inherited(fds[2]).unwrap(),
        shm: pifork::SharedMemory::from_inherited(fds[3]).unwrap(),
        joinable: pifork::JoinableQueue::from_inherited(fds[4]).unwrap(),
        simple: pifork::SimpleQueue::from_inherited(fds[5]).unwrap(),
        bounded: pifork::BoundedSemaphore::from_inherited(fds[6]).unwrap(),
        cond: pifork::Condition::from_inherited(fds[7], fds[8]).unwrap(),
        barrier: pifork::Barrier::from_inherited(fds[9]).unwrap(),
    };
    KINDS.with(|k| *k.borrow_mut() = Some(kinds));
}

/// A task using each: the RLock taken twice, the parent's Event seen set, `x * x` into slot
/// `x` of the array and a mark into byte `x` of the segment (under the RLock), `x` put on
/// both queues, a permit taken and given back, waiters notified under the condition's lock,
/// and the parties of the barrier: `x` back if all of it worked.
fn use_every_kind(x: u64) -> u64 {
    KINDS.with(|k| {
        let k = k.borrow();
        let k = k.as_ref().expect("the initializer ran");
        let _outer = k.rlock.lock();
        let _inner = k.rlock.lock();
        let set = k.event.wait(Some(Duration::from_secs(10)));
        {
            let _g = k.array.get_lock().lock();
            k.array.set(x as usize, x * x).unwrap();
        }
        k.shm.write(x as usize, &[x as u8 | 0x80]).unwrap();
        k.joinable.put(&x).unwrap();
        k.simple.put(&x).unwrap();
        drop(k.bounded.lock());
        let unheld = k.cond.notify_all().is_err();
        let notified = {
            let _g = k.cond.lock();
            k.cond.notify_all().is_ok()
        };
        if set && unheld && notified && k.barrier.parties() == 3 { x } else { u64::MAX }
    })
}

// Every other kind of object claimed in the initializer and used by tasks, on workers
// recycled every 5 tasks (so replacements claim them too).
fn every_kind_reaches_initializer(m: StartMethod) {
    use std::os::fd::AsRawFd;
    let n = 120u64;
    let rlock = pifork::RLock::new().unwrap();
    let event = pifork::Event::new().unwrap();
    let array = pifork::Array::<u64>::zeroed(n as usize).unwrap();
    let shm = pifork::SharedMemory::new(n as usize).unwrap();
    let joinable = pifork::JoinableQueue::<u64>::new().unwrap();
    let simple = pifork::SimpleQueue::<u64>::new().unwrap();
    let bounded = pifork::BoundedSemaphore::new(1).unwrap();
    let cond = pifork::Condition::new().unwrap();
    let barrier = pifork::Barrier::new(3).unwrap();
    let mut fds = vec![
        rlock.as_raw_fd(),
        event.as_raw_fd(),
        array.as_raw_fd(),
        shm.as_raw_fd(),
        joinable.as_raw_fd(),
        simple.as_raw_fd(),
        bounded.as_raw_fd(),
    ];
    fds.extend(cond.fds());
    fds.push(barrier.as_raw_fd());
    event.set();
    let p = Pool::builder()
        .processes(2)
        .start_method(m)
        .maxtasksperchild(5)
        .inherit_fds(fds.iter().copied())
        .initializer(claim_every_kind, fds.clone())
        .build()
        .unwrap();
    let first = p.pids();
    let all: Vec<u64> = (0..n).collect();
    assert_eq!(p.map_chunked(use_every_kind, 0..n, Some(1)).unwrap(), all);
    assert_eq!(array.to_vec(), all.iter().map(|x| x * x).collect::<Vec<_>>());
    let mut marks = vec![0u8; n as usize];
    shm.read(0, &mut marks).unwrap();
    assert!(marks.iter().enumerate().all(|(x, &b)| b == x as u8 | 0x80), "every mark");
    let mut got: Vec<u64> = (0..n)
        .map(|_| {
            let x = joinable.get_timeout(Duration::from_secs(10)).unwrap();
            joinable.task_done().unwrap();
            x
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, all);
    assert!(joinable.join_timeout(Duration::from_secs(10)), "every task done");
    let mut got: Vec<u64> = (0..n).map(|_| simple.get().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, all);
    assert!(simple.empty());
    assert_eq!(bounded.get_value(), 1, "every permit given back");
    assert!(!rlock.is_locked(), "every RLock level released");
    assert!(p.pids().iter().all(|pid| !first.contains(pid)), "the workers were replaced");
}

fn sharing_objects_reach_initializer(m: StartMethod) {
    let lock = pifork::Lock::new().unwrap();
    let value = pifork::Value::<u64>::new(0).unwrap();
    let queue = pifork::Queue::<u64>::new().unwrap();
    let sem = pifork::Semaphore::new(0).unwrap();
    use std::os::fd::AsRawFd;
    let fds = (lock.as_raw_fd(), value.as_raw_fd(), queue.as_raw_fd(), sem.as_raw_fd());
    // maxtasksperchild(5): 200 tasks need 40 workers, so replacements claim them too.
    let p = Pool::builder()
        .processes(2)
        .start_method(m)
        .maxtasksperchild(5)
        .inherit_fds([fds.0, fds.1, fds.2, fds.3])
        .initializer(claim_shared, fds)
        .build()
        .unwrap();
    let first = p.pids();
    let n = 200u64;
    assert_eq!(p.map_chunked(use_shared, 0..n, Some(1)).unwrap(), (0..n).collect::<Vec<_>>());
    assert_eq!(value.get(), n, "every increment under the lock counted");
    let mut got: Vec<u64> =
        (0..n).map(|_| queue.get_timeout(Duration::from_secs(10)).unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    assert!(queue.empty());
    for _ in 0..n {
        assert!(sem.acquire_timeout(Duration::ZERO).is_some(), "released once per task");
    }
    assert!(sem.acquire_timeout(Duration::ZERO).is_none());
    assert!(p.pids().iter().all(|pid| !first.contains(pid)), "the workers were replaced");
}
