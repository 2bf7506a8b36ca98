//! `pifork-mpi`: `pifork pi` across the ranks of an MPI job, e.g. one rank per Raspberry Pi of
//! a cluster (`mpirun --bind-to none --map-by ppr:1:node pifork-mpi pi`). Every rank computes
//! a fixed share of the same chunk plan on its own pinned worker processes; rank 0 gathers the
//! partial sums in chunk order and combines them as `pifork pi` does, so the result has the same
//! bits for any number of ranks and workers. Flags are checked and exit codes decided here; the
//! work is done by `pifork_pi`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use argh::FromArgs;
use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use pifork::{SignalPipe, StartMethod, forkserver};
use pifork_pi::cluster::{
    RankReport, WORKER_FIELDS, affinity_warning, cluster_json, cluster_text, share,
    worker_from_record, worker_record,
};
use pifork_pi::engine::{self, PiJob, PiReport};
use pifork_pi::plan::{chunk_plan, combine};
use pifork_pi::report::parse_count;
use pifork_pi::{Error, kernel, pi};
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

/// Why the program stops early or fails, turned into output and an exit code in `main`.
enum Failure {
    /// `--help`: the text rank 0 prints.
    Help(String),
    /// Bad input: one line from rank 0, exit 2 on every rank.
    Usage(String),
    /// The run failed on this rank: the job is aborted.
    Run(Error),
    /// A signal handler could not be installed: the job is aborted.
    Signals(std::io::Error),
}

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Run(e.into())
    }
}

fn main() -> ExitCode {
    // A spawned worker runs its entry point here and exits; nothing below runs in it.
    pifork_pi::register_entries();
    pifork::main_guard();
    let args: Vec<String> = std::env::args().collect();
    let options = parse(&args);
    // The fork server starts while this process is small and single-threaded: before MPI.
    if let Ok(o) = &options
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
    let outcome = options.and_then(|o| run(&world, &o, init));
    let _ = std::io::stdout().flush();
    match outcome {
        Ok(()) => {
            drop(universe);
            forkserver::stop();
            ExitCode::SUCCESS
        }
        Err(Failure::Help(text)) => {
            if rank == 0 {
                print!("{text}");
            }
            drop(universe);
            forkserver::stop();
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(msg)) => {
            if rank == 0 {
                say(&msg);
            }
            drop(universe);
            forkserver::stop();
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            let code = match e {
                Error::Interrupted { signal } => 128 + signal,
                _ => 1,
            };
            abort(&world, &format!("rank {rank}: {e}"), code)
        }
        Err(Failure::Signals(e)) => abort(&world, &format!("rank {rank}: signal handler: {e}"), 1),
    }
}

/// Ends the whole job after `line`: the other ranks may be waiting for this one in a
/// collective. The fork server (and so any worker left) goes first.
fn abort(world: &SimpleCommunicator, line: &str, code: i32) -> ! {
    say(line);
    forkserver::stop();
    world.abort(code)
}

/// Writes `pifork-mpi: <line>` to stderr in one write, so that lines of several ranks, which
/// mpirun forwards as they come, do not interleave.
fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("pifork-mpi: {line}\n").as_bytes());
}

/// The command line, checked; every rank parses the same arguments.
fn parse(args: &[String]) -> Result<Options, Failure> {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = match Cli::from_args(&["pifork-mpi"], strs.get(1..).unwrap_or_default()) {
        Ok(cli) => cli,
        Err(early) => {
            return Err(match early.status {
                Ok(()) => Failure::Help(early.output),
                Err(()) => {
                    let first = early.output.lines().next().unwrap_or("invalid arguments");
                    Failure::Usage(format!("{first} (see pifork-mpi --help)"))
                }
            });
        }
    };
    let Command::Pi(a) = cli.command;
    if a.terms == 0 {
        return Err(Failure::Usage("--terms must be at least 1".into()));
    }
    if a.terms > pi::MAX_TERMS {
        return Err(Failure::Usage(format!(
            "--terms {} is too large (at most {})",
            a.terms,
            pi::MAX_TERMS
        )));
    }
    let workers = match a.workers_per_rank {
        None => None,
        Some(0) => return Err(Failure::Usage("--workers-per-rank must be at least 1".into())),
        Some(n) if n > 4096 => {
            return Err(Failure::Usage(format!(
                "--workers-per-rank {n} is too many (at most 4096)"
            )));
        }
        Some(n) => Some(n as usize),
    };
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
    Ok(Options { terms: a.terms, workers, json: a.json, correct: a.correct, start: a.start })
}

/// Numbers per rank record: workers, CPUs, chunks, busy ns, MPI init ns.
const RANK_FIELDS: usize = 5;

/// Bytes of a host name in a rank record.
const HOST_BYTES: usize = 64;

/// This rank's share of the run; on rank 0 also the gathering, combining and report.
fn run(world: &SimpleCommunicator, o: &Options, init: Duration) -> Result<(), Failure> {
    let rank = world.rank() as usize;
    let ranks = world.size() as usize;
    let plan = chunk_plan(o.terms).len();
    let mine: Vec<usize> = share(plan, rank, ranks).collect();
    let cpus = pifork::cpu_count();
    let workers = o.workers.unwrap_or(cpus);
    let host = mpi::environment::processor_name().unwrap_or_else(|_| "?".into());
    if let Some(warning) = affinity_warning(rank, &host, cpus, workers) {
        say(&warning);
    }

    world.barrier();
    let started = Instant::now();
    let signals = SignalPipe::new(&[SIGINT, SIGTERM])?;
    let on_signal = || signals.take().map(|signal| Error::Interrupted { signal });
    let mut job = PiJob::new(o.terms, workers);
    job.start = o.start;
    let (sums, worker_reports, busy) = if mine.is_empty() {
        (Vec::new(), Vec::new(), Duration::ZERO)
    } else {
        let r = engine::run_chunks(&job, &mine, Some((signals.fd(), &on_signal)))?;
        (r.sums.iter().map(|&(_, s)| s).collect::<Vec<f64>>(), r.workers, r.wall)
    };
    // The workers are reaped; a signal while waiting for the other ranks ends this one at once.
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(
            signal,
            128 + signal,
            Arc::new(AtomicBool::new(true)),
        )
        .map_err(Failure::Signals)?;
    }

    let record: [u64; RANK_FIELDS] = [
        worker_reports.len() as u64,
        cpus as u64,
        mine.len() as u64,
        busy.as_nanos() as u64,
        init.as_nanos() as u64,
    ];
    let mut host_bytes = [0u8; HOST_BYTES];
    let n = host.len().min(HOST_BYTES);
    host_bytes[..n].copy_from_slice(&host.as_bytes()[..n]);
    let records: Vec<u64> = worker_reports.iter().flat_map(worker_record).collect();

    let root = world.process_at_rank(0);
    if rank != 0 {
        root.gather_into(&record[..]);
        root.gather_into(&host_bytes[..]);
        root.gather_varcount_into(&sums[..]);
        root.gather_varcount_into(&records[..]);
        return Ok(());
    }

    let mut all_records = vec![0u64; RANK_FIELDS * ranks];
    root.gather_into_root(&record[..], &mut all_records[..]);
    let mut all_hosts = vec![0u8; HOST_BYTES * ranks];
    root.gather_into_root(&host_bytes[..], &mut all_hosts[..]);
    // The shares are contiguous and in rank order: gathered in rank order, the partial sums
    // are in chunk order.
    let counts: Vec<i32> = (0..ranks).map(|r| share(plan, r, ranks).len() as i32).collect();
    let mut partials = vec![0f64; plan];
    gather_varcount(&root, &sums, &mut partials, &counts);
    let worker_counts: Vec<i32> =
        all_records.chunks(RANK_FIELDS).map(|r| (r[0] as usize * WORKER_FIELDS) as i32).collect();
    let mut all_workers = vec![0u64; worker_counts.iter().map(|&c| c as usize).sum()];
    gather_varcount(&root, &records, &mut all_workers, &worker_counts);
    let estimate = 4.0 * combine(&partials);
    let wall = started.elapsed();

    let workers = all_workers
        .chunks_exact(WORKER_FIELDS)
        .enumerate()
        .map(|(i, r)| worker_from_record(r.try_into().expect("a whole record"), i))
        .collect();
    let rank_reports: Vec<RankReport> = all_records
        .chunks(RANK_FIELDS)
        .zip(all_hosts.chunks(HOST_BYTES))
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
        .collect();
    let report = PiReport {
        terms: o.terms,
        estimate,
        wall,
        workers,
        backend: pifork::backend(),
        kernel: kernel::selected().unwrap_or_else(|_| kernel::best()),
    };
    if o.json {
        println!("{}", cluster_json(&report, o.correct, &rank_reports));
    } else {
        print!("{}", cluster_text(&report, o.correct, &rank_reports));
    }
    Ok(())
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
