//! `pifork`: computes pi with one pinned worker process per core, races workers, runs as a
//! systemd service, benchmarks, and reports what the system offers. Flags are parsed and
//! checked here, exit codes are decided here; the work is done by `pifork::app`. The appliance
//! runs on Linux; on Windows, where pifork is a library with the spawn start method, this
//! program only serves as a spawned child and otherwise says where the command line runs.

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    command_line::main()
}

#[cfg(windows)]
fn main() -> std::process::ExitCode {
    // A spawned child runs its entry point here and exits.
    pifork::main_guard();
    eprintln!("pifork: the command line runs on Linux; on Windows pifork is a library");
    std::process::ExitCode::from(2)
}

/// The command line on Linux.
#[cfg(unix)]
mod command_line {
    use std::io::Write;
    use std::process::ExitCode as ProcessExit;

    use argh::FromArgs;
    use pifork::app::report::{
        BenchReport, bench_json, bench_text, parse_count, pi_json, pi_text, round_trips_json,
        round_trips_text, status_json, status_text,
    };
    use pifork::app::service::state::{FILE, State, StateError, check_job};
    use pifork::app::{Error, bench, engine, info, kernel, logging, pi, pool, race, service};
    use pifork::{SignalPipe, StartMethod, forkserver};

    /// Python's multiprocessing.Process model, natively: parallel pi on pinned worker processes.
    #[derive(FromArgs)]
    struct Cli {
        #[argh(subcommand)]
        command: Command,
    }

    #[derive(FromArgs)]
    #[argh(subcommand)]
    enum Command {
        Pi(PiArgs),
        Race(RaceArgs),
        Serve(ServeArgs),
        Status(StatusArgs),
        Bench(BenchArgs),
        Info(InfoArgs),
    }

    /// Compute pi with the Leibniz series on one pinned worker process per core.
    #[derive(FromArgs)]
    #[argh(subcommand, name = "pi")]
    struct PiArgs {
        /// terms of the series (default 100000000; accepts 1e8 and 100_000_000)
        #[argh(option, from_str_fn(parse_count), default = "100_000_000")]
        terms: u64,
        /// worker processes (default: the CPUs this process may use)
        #[argh(option, from_str_fn(parse_count))]
        workers: Option<u64>,
        /// do not pin workers to CPUs
        #[argh(switch)]
        no_pin: bool,
        /// print one JSON object instead of text
        #[argh(switch)]
        json: bool,
        /// also print the estimate corrected with the series' remainder expansion
        #[argh(switch)]
        correct: bool,
        /// start method of the workers: fork (default), spawn or forkserver
        #[argh(option, default = "StartMethod::Fork")]
        start: StartMethod,
    }

    /// Start workers with different amounts of work; report the first to finish, stop the rest.
    #[derive(FromArgs)]
    #[argh(subcommand, name = "race")]
    struct RaceArgs {
        /// runners (default: the CPUs this process may use)
        #[argh(option, from_str_fn(parse_count))]
        workers: Option<u64>,
        /// seed of the work sizes (default 1)
        #[argh(option, from_str_fn(parse_count), default = "1")]
        seed: u64,
        /// the largest amount of work, in terms (default 30000000)
        #[argh(option, from_str_fn(parse_count), default = "30_000_000")]
        terms: u64,
        /// wait for every runner instead of terminating the losers
        #[argh(switch)]
        join_all: bool,
        /// start method of the runners: fork (default), spawn or forkserver
        #[argh(option, default = "StartMethod::Fork")]
        start: StartMethod,
    }

    /// Measure the kernel, the scaling over worker counts and the start+join round trip.
    #[derive(FromArgs)]
    #[argh(subcommand, name = "bench")]
    struct BenchArgs {
        /// terms per scaling run (default 1e10)
        #[argh(option, from_str_fn(parse_count), default = "10_000_000_000")]
        terms: u64,
        /// largest worker count (default: the CPUs this process may use)
        #[argh(option, from_str_fn(parse_count))]
        max_workers: Option<u64>,
        /// runs per figure; medians are reported (default 5)
        #[argh(option, from_str_fn(parse_count), default = "5")]
        repeat: u64,
        /// print one JSON object instead of a table
        #[argh(switch)]
        json: bool,
        /// start method of the scaling runs' workers: fork (default), spawn or forkserver
        #[argh(option, default = "StartMethod::Fork")]
        start: StartMethod,
        /// only compare the start+join round trip of the three start methods
        #[argh(switch)]
        start_methods: bool,
    }

    /// Show the kernel, whether pidfd works, the CPUs available, the backend chosen and the
    /// pi kernel's path.
    #[derive(FromArgs)]
    #[argh(subcommand, name = "info")]
    struct InfoArgs {}

    /// Run as a service: keep every core on the series toward N terms, durably, resumably.
    #[derive(FromArgs)]
    #[argh(subcommand, name = "serve")]
    struct ServeArgs {
        /// terms of the series (default 1e12)
        #[argh(option, from_str_fn(parse_count), default = "1_000_000_000_000")]
        terms: u64,
        /// worker processes (default: the CPUs this process may use)
        #[argh(option, from_str_fn(parse_count))]
        workers: Option<u64>,
        /// terms per chunk, the unit of work and of saved progress (default 4e9)
        #[argh(option, from_str_fn(parse_count), default = "4_000_000_000")]
        chunk: u64,
        /// where progress is kept (default: $STATE_DIRECTORY, else /var/lib/pifork)
        #[argh(option)]
        state_dir: Option<std::path::PathBuf>,
        /// exit once the result is recorded instead of idling until stopped
        #[argh(switch)]
        exit_when_done: bool,
        /// start method of the workers: fork (default), spawn or forkserver
        #[argh(option, default = "StartMethod::Fork")]
        start: StartMethod,
    }

    /// Show the progress of `pifork serve`, read from its state (also while it runs).
    #[derive(FromArgs)]
    #[argh(subcommand, name = "status")]
    struct StatusArgs {
        /// where progress is kept (default: $STATE_DIRECTORY, else /var/lib/pifork)
        #[argh(option)]
        state_dir: Option<std::path::PathBuf>,
        /// print one JSON object instead of text
        #[argh(switch)]
        json: bool,
    }

    /// A run's failure, turned into one line and an exit code here and nowhere else.
    enum Failure {
        Usage(String),
        Run(Error),
    }

    impl<E: Into<Error>> From<E> for Failure {
        fn from(e: E) -> Self {
            Failure::Run(e.into())
        }
    }

    pub(crate) fn main() -> ProcessExit {
        // A spawned worker runs its entry point here and exits; nothing below runs in it.
        pifork::app::register_entries();
        pifork::main_guard();
        let args: Vec<String> = std::env::args().collect();
        let strs: Vec<&str> = args.iter().map(String::as_str).collect();
        let cli = match Cli::from_args(&["pifork"], strs.get(1..).unwrap_or_default()) {
            Ok(cli) => cli,
            Err(early) => {
                return match early.status {
                    Ok(()) => {
                        print!("{}", early.output);
                        ProcessExit::SUCCESS
                    }
                    Err(()) => {
                        let first = early.output.lines().next().unwrap_or("invalid arguments");
                        eprintln!("pifork: {first} (see pifork --help)");
                        ProcessExit::from(2)
                    }
                };
            }
        };
        let method = match &cli.command {
            Command::Pi(a) => a.start,
            Command::Race(a) => a.start,
            Command::Bench(a) if a.start_methods => StartMethod::Forkserver,
            Command::Bench(a) => a.start,
            Command::Serve(a) => a.start,
            Command::Status(_) | Command::Info(_) => StartMethod::Fork,
        };
        logging::init(if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" });
        // A forced kernel path this CPU lacks is bad input: refused before any work starts.
        if !matches!(cli.command, Command::Status(_) | Command::Info(_))
            && let Err(e) = kernel::selected()
        {
            eprintln!("pifork: {e}");
            return ProcessExit::from(2);
        }
        // The fork server must start while this process is still small and single-threaded.
        if method == StartMethod::Forkserver
            && let Err(e) = forkserver::start()
        {
            eprintln!("pifork: {e}");
            return ProcessExit::FAILURE;
        }
        let outcome = match cli.command {
            Command::Pi(a) => run_pi(a),
            Command::Race(a) => run_race(a),
            Command::Bench(a) => run_bench(a),
            Command::Serve(a) => run_serve(a),
            Command::Status(a) => run_status(a),
            Command::Info(_) => run_info(),
        };
        let _ = std::io::stdout().flush();
        forkserver::stop();
        match outcome {
            Ok(()) => ProcessExit::SUCCESS,
            Err(Failure::Usage(msg)) => {
                eprintln!("pifork: {msg}");
                ProcessExit::from(2)
            }
            Err(Failure::Run(Error::Interrupted { signal })) => {
                eprintln!("pifork: {}", Error::Interrupted { signal });
                ProcessExit::from((128 + signal) as u8)
            }
            Err(Failure::Run(e)) => {
                eprintln!("pifork: {e}");
                ProcessExit::FAILURE
            }
        }
    }

    fn run_serve(a: ServeArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        if a.chunk == 0 {
            return Err(Failure::Usage("--chunk must be at least 1".into()));
        }
        check_job(a.terms, a.chunk).map_err(|e| Failure::Usage(e.to_string()))?;
        let cfg = service::ServeConfig {
            terms: a.terms,
            chunk: a.chunk.min(a.terms),
            workers: worker_count(a.workers)?,
            state_dir: service::state_dir(non_empty(a.state_dir)?),
            exit_when_done: a.exit_when_done,
            start: a.start,
        };
        let signals = SignalPipe::new(&[
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ])?;
        service::serve(&cfg, &signals)?;
        Ok(())
    }

    /// `--state-dir ''` is a usage error, not the current directory.
    fn non_empty(dir: Option<std::path::PathBuf>) -> Result<Option<std::path::PathBuf>, Failure> {
        match dir {
            Some(d) if d.as_os_str().is_empty() => {
                Err(Failure::Usage("--state-dir must not be empty".into()))
            }
            d => Ok(d),
        }
    }

    fn run_status(a: StatusArgs) -> Result<(), Failure> {
        let dir = service::state_dir(non_empty(a.state_dir)?);
        let Some(state) = State::load(&dir)? else {
            return Err(Failure::Run(Error::State(StateError::Io {
                path: dir.join(FILE),
                op: "read",
                reason: "no such file: pifork serve has not run with this state directory".into(),
            })));
        };
        if a.json {
            println!("{}", status_json(&state));
        } else {
            print!("{}", status_text(&state, &dir));
        }
        Ok(())
    }

    /// The worker count: the flag, else the CPUs available; at least 1.
    fn worker_count(flag: Option<u64>) -> Result<usize, Failure> {
        match flag {
            None => Ok(pifork::cpu_count()),
            Some(0) => Err(Failure::Usage("--workers must be at least 1".into())),
            Some(n) => {
                let n = usize::try_from(n).ok().filter(|&n| n <= 4096).ok_or_else(|| {
                    Failure::Usage(format!("--workers {n} is too many (at most 4096)"))
                })?;
                let bound = pool::worker_bound();
                let n = if n > bound {
                    log::warn!(
                        "pifork: --workers {n} capped to {bound} ({} per available CPU): more \
                         would only slow every stop",
                        pool::WORKERS_PER_CPU
                    );
                    bound
                } else {
                    n
                };
                pool::make_room(n).map_err(|e| Failure::Usage(e.to_string()))?;
                Ok(n)
            }
        }
    }

    fn check_terms(terms: u64) -> Result<(), Failure> {
        if terms == 0 {
            return Err(Failure::Usage("--terms must be at least 1".into()));
        }
        if terms > pi::MAX_TERMS {
            return Err(Failure::Usage(format!(
                "--terms {terms} is too large (at most {})",
                pi::MAX_TERMS
            )));
        }
        Ok(())
    }

    /// SIGINT and SIGTERM, as a descriptor the run waits on; the run then ends with
    /// [`Error::Interrupted`].
    fn shutdown_signals() -> Result<SignalPipe, Failure> {
        Ok(SignalPipe::new(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?)
    }

    fn run_pi(a: PiArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        let workers = worker_count(a.workers)?;
        let signals = shutdown_signals()?;
        let on_signal = || signals.take().map(|signal| Error::Interrupted { signal });
        let mut job = engine::PiJob::new(a.terms, workers);
        job.pin = !a.no_pin;
        job.start = a.start;
        let report = engine::run(&job, Some((signals.fd(), &on_signal)))?;
        if a.json {
            println!("{}", pi_json(&report, a.correct));
        } else {
            print!("{}", pi_text(&report, a.correct));
        }
        Ok(())
    }

    fn run_race(a: RaceArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        let workers = worker_count(a.workers)?;
        let signals = shutdown_signals()?;
        let on_signal = || signals.take().map(|signal| Error::Interrupted { signal });
        let report = race::race(
            a.start,
            workers,
            a.seed,
            a.terms,
            a.join_all,
            Some((signals.fd(), &on_signal)),
        )?;
        println!("race: {} runners, seed {}", report.runners.len(), report.seed);
        let w = &report.runners[report.winner];
        println!(
            "first: runner {} (pid {}, {} terms) after {:.1} ms",
            w.index,
            w.pid,
            w.terms,
            w.finished.unwrap_or_default().as_secs_f64() * 1e3
        );
        for r in &report.runners {
            let when = r.finished.map_or(String::from("terminated"), |d| {
                format!("finished after {:.1} ms", d.as_secs_f64() * 1e3)
            });
            println!(
                "runner {}: pid {} terms {} exitcode {} ({when})",
                r.index, r.pid, r.terms, r.exitcode
            );
        }
        Ok(())
    }

    fn run_bench(a: BenchArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        let max_workers = worker_count(a.max_workers)?;
        if a.repeat == 0 || a.repeat > 1000 {
            return Err(Failure::Usage("--repeat must be between 1 and 1000".into()));
        }
        let repeat = a.repeat as usize;
        let signals = shutdown_signals()?;
        let on_signal = || signals.take().map(|signal| Error::Interrupted { signal });
        let cancel: Option<engine::Cancel<'_>> = Some((signals.fd(), &on_signal));
        let round_trips = bench::round_trips(200, cancel)?;
        if a.start_methods {
            if a.json {
                println!("{}", round_trips_json(&round_trips));
            } else {
                print!("{}", round_trips_text(&round_trips));
            }
            return Ok(());
        }
        let kernel_terms = (a.terms / 10).clamp(1 << 20, 100_000_000);
        let kernel = bench::kernel_figures(kernel_terms, repeat);
        let rows = bench::scaling(a.terms, max_workers, repeat, a.start, cancel)?;
        let report =
            BenchReport { terms: a.terms, repeat, kernel, round_trips, start: a.start, rows };
        if a.json {
            println!("{}", bench_json(&report));
        } else {
            print!("{}", bench_text(&report));
        }
        Ok(())
    }

    fn run_info() -> Result<(), Failure> {
        print!("{}", info::info_text(&info::system_info()));
        Ok(())
    }
}
