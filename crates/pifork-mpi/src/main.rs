//! `pifork-mpi`: `pifork pi` across the ranks of an MPI job, e.g. one rank per Raspberry Pi of
//! a cluster (`mpirun --bind-to none --map-by ppr:1:node pifork-mpi pi`). Every rank computes
//! a fixed share of the same chunk plan on its own pinned worker processes; rank 0 gathers the
//! partial sums in chunk order and combines them as `pifork pi` does, so the result has the same
//! bits for any number of ranks and workers. Flags are parsed and checked as `pifork`'s are
//! (`pifork_pi::cli`), and exit codes decided there; the work is done by `pifork_pi`.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use argh::FromArgs;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::{Process, SimpleCommunicator};
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use pifork::{StartMethod, forkserver};
use pifork_pi::cli::{
    self, Failure, Interrupts, Parsed, check_terms, check_workers, emit, emit_report, parse_count,
};
use pifork_pi::cluster::{
    RankReport, WORKER_FIELDS, affinity_warning, cluster_json, cluster_text, share,
    worker_from_record, worker_record,
};
use pifork_pi::engine::{self, PiJob, PiReport};
use pifork_pi::kernel;
use pifork_pi::plan::{chunk_plan, combine};
use pifork_pi::pool::WorkerReport;
use signal_hook::consts::{SIGINT, SIGTERM};

/// pifork across the ranks of an MPI job: the same bits as `pifork pi` on one machine.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Pi(PiArgs),
}

/// Compute pi with the Leibniz series, each rank on its own pinned worker processes.
#[derive(FromArgs)]
#[argh(subcommand, name = "pi")]
struct PiArgs {
    /// terms of the series (default 100000000; accepts 1e8 and 100_000_000)
    #[argh(option, from_str_fn(parse_count), default = "100_000_000")]
    terms: u64,
    /// worker processes per rank (default: the CPUs the rank may use)
    #[argh(option, from_str_fn(parse_count))]
    workers_per_rank: Option<u64>,
    /// print one JSON object instead of text
    #[argh(switch)]
    json: bool,
    /// also print the estimate corrected with the series' remainder expansion
    #[argh(switch)]
    correct: bool,
    /// start method of the workers: forkserver (default) or spawn; a rank has MPI's threads,
    /// so fork is refused
    #[argh(option, default = "StartMethod::Forkserver")]
    start: StartMethod,
}

/// What the command line asked for, checked.
struct Options {
    terms: u64,
    workers: Option<usize>,
    json: bool,
    correct: bool,
    start: StartMethod,
}

fn main() -> ExitCode {
    // A spawned worker runs its entry point here and exits; nothing below runs in it.
    pifork_pi::register_entries();
    pifork::main_guard();
    let parsed = parse(std::env::args_os());
    // The fork server starts while this process is small and single-threaded: before MPI.
    if let Ok(Parsed::Run(o)) = &parsed
        && o.start == StartMethod::Forkserver
        && let Err(e) = forkserver::start()
    {
        say(&e.to_string());
        return ExitCode::FAILURE;
    }
    let init_started = Instant::now();
    let Some(universe) = mpi::initialize() else {
        say("MPI was initialised already");
        return ExitCode::FAILURE;
    };
    let init = init_started.elapsed();
    let world = universe.world();
    let rank = world.rank();
    let outcome = parsed.and_then(|parsed| match parsed {
        Parsed::Run(o) => Rank::new(&world, &o, init).run(),
        // Every rank parsed the same arguments: rank 0 answers for all.
        Parsed::Print(text) if rank == 0 => emit(&text),
        Parsed::Print(_) => Ok(()),
    });
    match outcome {
        Ok(()) => end(universe, 0),
        // Every rank fails alike on bad input: rank 0 says why.
        Err(failure @ Failure::Usage(_)) => {
            if rank == 0 {
                say_failure(&failure);
            }
            end(universe, failure.exit_code())
        }
        // Only rank 0 writes, once every collective is done.
        Err(failure @ Failure::Output(_)) => {
            say_failure(&failure);
            end(universe, failure.exit_code())
        }
        Err(failure @ (Failure::Run(_) | Failure::Signals(_))) => {
            let line = failure.message().unwrap_or_default();
            abort(&world, &format!("rank {rank}: {line}"), failure.exit_code())
        }
    }
}

/// Ends this rank with `code` after MPI, then the fork server.
fn end(universe: Universe, code: u8) -> ExitCode {
    drop(universe);
    forkserver::stop();
    ExitCode::from(code)
}

/// Ends the whole job after `line`: the other ranks may be waiting for this one in a
/// collective. The fork server (and so any worker left) goes first.
fn abort(world: &SimpleCommunicator, line: &str, code: u8) -> ! {
    say(line);
    forkserver::stop();
    world.abort(i32::from(code))
}

/// Writes `pifork-mpi: <line>` to stderr in one write, so that lines of several ranks, which
/// mpirun forwards as they come, do not interleave.
fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("pifork-mpi: {line}\n").as_bytes());
}

/// [`say`]s the line of `failure`, if it has one.
fn say_failure(failure: &Failure) {
    if let Some(line) = failure.message() {
        say(&line);
    }
}

/// The command line, checked; every rank parses the same arguments.
fn parse(raw: impl IntoIterator<Item = OsString>) -> Result<Parsed<Options>, Failure> {
    let a = match cli::parse("pifork-mpi", raw)? {
        Parsed::Run(Cli { command: Command::Pi(a) }) => a,
        Parsed::Print(text) => return Ok(Parsed::Print(text)),
    };
    check_terms(a.terms)?;
    let workers = a.workers_per_rank.map(|n| check_workers("--workers-per-rank", n)).transpose()?;
    if a.start == StartMethod::Fork {
        return Err(Failure::Usage(
            "--start fork is not possible in an MPI rank, which has threads; use forkserver or \
             spawn"
                .into(),
        ));
    }
    // A forced kernel path this CPU lacks is bad input, refused before any work starts.
    if let Err(e) = kernel::selected() {
        return Err(Failure::Usage(e.to_string()));
    }
    let options =
        Options { terms: a.terms, workers, json: a.json, correct: a.correct, start: a.start };
    Ok(Parsed::Run(options))
}

/// Numbers per rank record: workers, CPUs, chunks, busy ns, MPI init ns.
const RANK_FIELDS: usize = 5;

/// Bytes of a host name in a rank record.
const HOST_BYTES: usize = 64;

/// One rank of the job: where it runs, what it was asked, and its place in the chunk plan.
struct Rank<'a> {
    world: &'a SimpleCommunicator,
    o: &'a Options,
    /// How long MPI took to initialise here.
    init: Duration,
    rank: usize,
    ranks: usize,
    /// Chunks in the plan of all ranks.
    chunks: usize,
    cpus: usize,
    host: String,
}

impl<'a> Rank<'a> {
    fn new(world: &'a SimpleCommunicator, o: &'a Options, init: Duration) -> Rank<'a> {
        Rank {
            world,
            o,
            init,
            rank: world.rank() as usize,
            ranks: world.size() as usize,
            chunks: chunk_plan(o.terms).len(),
            cpus: pifork::cpu_count(),
            host: mpi::environment::processor_name().unwrap_or_else(|_| "?".into()),
        }
    }

    /// This rank's share of the run; on rank 0 also the gathering, combining and report.
    fn run(&self) -> Result<(), Failure> {
        let workers = self.o.workers.unwrap_or(self.cpus);
        if let Some(warning) = affinity_warning(self.rank, &self.host, self.cpus, workers) {
            say(&warning);
        }
        self.world.barrier();
        let started = Instant::now();
        let interrupts = Interrupts::catch()?;
        let mine = self.sum(workers, &interrupts)?;
        let root = self.world.process_at_rank(0);
        if self.rank != 0 {
            mine.send(&root);
            return Ok(());
        }
        // The shares are contiguous and in rank order: gathered in rank order, the partial
        // sums are in chunk order.
        let counts: Vec<i32> =
            (0..self.ranks).map(|r| share(self.chunks, r, self.ranks).len() as i32).collect();
        let all = mine.gather(&root, &counts);
        let estimate = 4.0 * combine(&all.sums);
        let report = PiReport {
            terms: self.o.terms,
            estimate,
            wall: started.elapsed(),
            workers: all.worker_reports(),
            backend: pifork::backend(),
            kernel: kernel::selected().unwrap_or_else(|_| kernel::best()),
        };
        let ranks = all.rank_reports();
        let correct = self.o.correct;
        emit_report(
            self.o.json,
            || cluster_json(&report, correct, &ranks),
            || cluster_text(&report, correct, &ranks),
        )
    }

    /// Sums this rank's chunks on `workers` worker processes; then a signal ends the rank at
    /// once, the workers being reaped, while it waits for the others.
    fn sum(&self, workers: usize, interrupts: &Interrupts) -> Result<Share, Failure> {
        let mine: Vec<usize> = share(self.chunks, self.rank, self.ranks).collect();
        let mut job = PiJob::new(self.o.terms, workers);
        job.start = self.o.start;
        let (sums, reports, busy) = if mine.is_empty() {
            (Vec::new(), Vec::new(), Duration::ZERO)
        } else {
            let r = interrupts.run(|cancel| engine::run_chunks(&job, &mine, cancel))?;
            (r.sums.iter().map(|&(_, s)| s).collect(), r.workers, r.wall)
        };
        for signal in [SIGINT, SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                Arc::new(AtomicBool::new(true)),
            )
            .map_err(Failure::Signals)?;
        }
        let mut host = [0u8; HOST_BYTES];
        let n = self.host.len().min(HOST_BYTES);
        host[..n].copy_from_slice(&self.host.as_bytes()[..n]);
        Ok(Share {
            record: [
                reports.len() as u64,
                self.cpus as u64,
                mine.len() as u64,
                busy.as_nanos() as u64,
                self.init.as_nanos() as u64,
            ],
            host,
            sums,
            workers: reports.iter().flat_map(worker_record).collect(),
        })
    }
}

/// What one rank did, as the numbers rank 0 gathers.
struct Share {
    /// Workers, CPUs, chunks, busy ns, MPI init ns.
    record: [u64; RANK_FIELDS],
    /// The host name, zero-padded.
    host: [u8; HOST_BYTES],
    /// The partial sums of its chunks, in chunk order.
    sums: Vec<f64>,
    /// Its workers' records, [`WORKER_FIELDS`] numbers each.
    workers: Vec<u64>,
}

impl Share {
    /// Sends the share to rank 0 (on another rank).
    fn send(&self, root: &Process<'_>) {
        root.gather_into(&self.record[..]);
        root.gather_into(&self.host[..]);
        root.gather_varcount_into(&self.sums[..]);
        root.gather_varcount_into(&self.workers[..]);
    }

    /// Gathers every rank's share on rank 0, its own included; rank r has `counts[r]` sums.
    fn gather(&self, root: &Process<'_>, counts: &[i32]) -> Gathered {
        let ranks = counts.len();
        let mut records = vec![0u64; RANK_FIELDS * ranks];
        root.gather_into_root(&self.record[..], &mut records[..]);
        let mut hosts = vec![0u8; HOST_BYTES * ranks];
        root.gather_into_root(&self.host[..], &mut hosts[..]);
        let mut sums = vec![0f64; counts.iter().map(|&c| c as usize).sum()];
        gather_varcount(root, &self.sums, &mut sums, counts);
        let worker_counts: Vec<i32> =
            records.chunks(RANK_FIELDS).map(|r| (r[0] as usize * WORKER_FIELDS) as i32).collect();
        let mut workers = vec![0u64; worker_counts.iter().map(|&c| c as usize).sum()];
        gather_varcount(root, &self.workers, &mut workers, &worker_counts);
        Gathered { records, hosts, sums, workers }
    }
}

/// Every rank's [`Share`], on rank 0, in rank order.
struct Gathered {
    records: Vec<u64>,
    hosts: Vec<u8>,
    /// The partial sums of the whole plan, in chunk order.
    sums: Vec<f64>,
    workers: Vec<u64>,
}

impl Gathered {
    /// The workers of every rank, numbered through.
    fn worker_reports(&self) -> Vec<WorkerReport> {
        self.workers
            .chunks_exact(WORKER_FIELDS)
            .enumerate()
            .map(|(i, r)| worker_from_record(r.try_into().expect("a whole record"), i))
            .collect()
    }

    /// One report per rank.
    fn rank_reports(&self) -> Vec<RankReport> {
        self.records
            .chunks(RANK_FIELDS)
            .zip(self.hosts.chunks(HOST_BYTES))
            .enumerate()
            .map(|(rank, (r, h))| RankReport {
                rank,
                host: String::from_utf8_lossy(h.split(|&b| b == 0).next().unwrap_or_default())
                    .into_owned(),
                workers: r[0] as usize,
                cpus: r[1] as usize,
                chunks: r[2] as usize,
                busy: Duration::from_nanos(r[3]),
                init: Duration::from_nanos(r[4]),
            })
            .collect()
    }
}

/// `MPI_Gatherv` on rank 0: rank r's `counts[r]` elements land one after another in `into`.
fn gather_varcount<T: mpi::datatype::Equivalence>(
    root: &mpi::topology::Process<'_>,
    mine: &[T],
    into: &mut [T],
    counts: &[i32],
) {
    let displs: Vec<i32> = counts
        .iter()
        .scan(0, |at, &c| {
            let d = *at;
            *at += c;
            Some(d)
        })
        .collect();
    let mut partition = PartitionMut::new(into, counts, &displs[..]);
    root.gather_varcount_into_root(mine, &mut partition);
}
