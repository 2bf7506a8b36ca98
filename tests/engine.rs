//! The pi engine (the appliance on top of the library): the same bits for any worker count,
//! pinning and start method, any subset of the chunk plan on its own, and a panicking worker
//! reported as such. A plain `main` runs the tests one after the other on the main thread, as
//! forking needs, and checks after each that no child process is left (`common::run_suite`);
//! `cargo test --test engine -- FILTER` runs those whose name contains FILTER.

mod common;

use common::{Test, cases};
use pifork::StartMethod;
use pifork_pi::engine::{self, PiJob};
use pifork_pi::plan::{chunk_plan, combine};

fn main() {
    pifork_pi::register_entries();
    pifork::main_guard();
    common::run_suite(cases("engine", TESTS, &StartMethod::ALL));
}

const TESTS: &[Test] = &[
    Test::Once(
        "engine_bits_do_not_depend_on_worker_count",
        engine_bits_do_not_depend_on_worker_count,
    ),
    Test::Once("engine_bits_match_across_start_methods", engine_bits_match_across_start_methods),
    Test::Once("engine_reports_a_panicking_worker", engine_reports_a_panicking_worker),
    Test::EachMethod(
        "engine_computes_any_subset_of_the_plan",
        engine_computes_any_subset_of_the_plan,
    ),
];

fn engine_bits_do_not_depend_on_worker_count() {
    let n = 5_000_001;
    let runs: Vec<u64> =
        (1..=3).map(|w| engine::run(&PiJob::new(n, w), None).unwrap().estimate.to_bits()).collect();
    assert!(runs.iter().all(|&b| b == runs[0]), "{runs:?}");
    let mut unpinned = PiJob::new(n, 2);
    unpinned.pin = false;
    let report = engine::run(&unpinned, None).unwrap();
    assert_eq!(report.estimate.to_bits(), runs[0]);
    assert!(report.workers.iter().all(|w| w.pinned.is_none()));
    assert_eq!(report.workers.iter().map(|w| w.terms).sum::<u64>(), n);
}

fn engine_bits_match_across_start_methods() {
    // The spawn and forkserver workers are the appliance's entries (pifork_pi::register_entries).
    let n = 3_000_017;
    let bits: Vec<u64> = pifork::StartMethod::ALL
        .into_iter()
        .map(|m| {
            let mut job = PiJob::new(n, 2);
            job.start = m;
            engine::run(&job, None).unwrap().estimate.to_bits()
        })
        .collect();
    assert!(bits.iter().all(|&b| b == bits[0]), "{bits:?}");
}

fn engine_reports_a_panicking_worker() {
    fn faulty(m: u64, n: u64) -> f64 {
        if m > 1 {
            panic!("chunk {m}..={n} is cursed");
        }
        pifork_pi::pi::partial_sum(m, n)
    }
    let mut job = PiJob::new(4 << 20, 2);
    job.kernel = Some(faulty);
    match engine::run(&job, None) {
        Err(pifork_pi::Error::ChunkPanicked { chunk, message }) => {
            assert!(chunk > 0, "the first chunk starts at term 1: {chunk}");
            assert!(message.contains("is cursed"), "{message}");
        }
        other => panic!("expected a panicked chunk, got {other:?}"),
    }
    // The kernel is a stand-in only the fork start method can carry.
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        job.start = method;
        assert!(
            matches!(
                engine::run(&job, None),
                Err(pifork_pi::Error::Process(pifork::Error::NeedsEntry { .. }))
            ),
            "{method}"
        );
    }
}

fn engine_computes_any_subset_of_the_plan(method: StartMethod) {
    // Two machines' shares, computed apart and combined in chunk order, give the bits of one run.
    let n = 9_000_001;
    let mut job = PiJob::new(n, 2);
    job.start = method;
    let whole = engine::run(&job, None).unwrap().estimate;
    let chunks = chunk_plan(n).len();
    let (odd, even): (Vec<usize>, Vec<usize>) = (0..chunks).rev().partition(|c| c % 2 == 1);
    let mut sums = vec![None; chunks];
    for share in [&odd, &even] {
        let report = engine::run_chunks(&job, share, None).unwrap();
        let asked: Vec<usize> = report.sums.iter().map(|&(c, _)| c).collect();
        assert_eq!(&asked, share, "{method}: sums come in the order asked");
        for (c, sum) in report.sums {
            assert_eq!(sums[c].replace(sum), None, "{method}: chunk {c} reported twice");
        }
        let terms: u64 = report.workers.iter().map(|w| w.terms).sum();
        let want: u64 = share.iter().map(|&c| chunk_plan(n)[c]).map(|(a, b)| b - a + 1).sum();
        assert_eq!(terms, want, "{method}: the workers summed exactly the share's terms");
    }
    let partials: Vec<f64> = sums.into_iter().map(|s| s.expect("every chunk")).collect();
    assert_eq!((4.0 * combine(&partials)).to_bits(), whole.to_bits(), "{method}");
    let lone = engine::run_chunks(&job, &[chunks - 1], None).unwrap();
    assert_eq!(lone.workers.len(), 1, "{method}: no more workers than chunks");
}
