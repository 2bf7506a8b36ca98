//! `pifork`: computes pi with one pinned worker process per core, races workers, runs as a
//! systemd service, benchmarks, and reports what the system offers. Flags are parsed and
//! checked here, exit codes are decided here; the work is done by `pifork_pi`. The appliance
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
    use std::ffi::OsString;
    use std::io::{IsTerminal, Write};
    use std::os::unix::fs::OpenOptionsExt;
    use std::process::ExitCode as ProcessExit;

    use argh::FromArgs;
    use pifork::{SignalPipe, StartMethod, forkserver};
    use pifork_pi::progress::TerminalLine;
    use pifork_pi::report::{
        BenchReport, bench_json, bench_text, json_string, parse_count, pi_json, pi_text, race_json,
        race_text, round_trips_json, round_trips_text, status_json, status_text,
    };
    use pifork_pi::service::state::{FILE, State, StateError, check_job};
    use pifork_pi::{Error, bench, engine, info, kernel, logging, pi, plan, pool, race, service};

    /// Python's multiprocessing.Process model, natively: parallel pi on pinned worker processes.
    #[derive(FromArgs)]
    #[argh(
        example = "pifork pi --terms 1e10\n\
                   pifork pi --terms=1e9 --workers 2 --json\n\
                   pifork race --workers 4 --seed 7\n\
                   pifork bench --terms 1e9 --repeat 3\n\
                   sudo pifork status\n\
                   pifork info --json",
        note = "Counts take 100000000, 100_000_000 or 1e8; an option's value may follow `=`.\n\
                `pifork --version` (or -V) prints the version; -h is --help.\n\n\
                Environment:\n\
                \u{a0} PIFORK_BACKEND=pipe   wait for children through pipes, not pidfds\n\
                \u{a0} PIFORK_KERNEL=PATH    force a pi kernel path (see pifork info)\n\
                \u{a0} RUST_LOG=LEVEL        log level: error, warn (default), info, debug\n\
                \u{a0} STATE_DIRECTORY=DIR   serve/status: where progress is kept\n\
                \u{a0} NOTIFY_SOCKET, WATCHDOG_USEC, JOURNAL_STREAM: set by systemd for serve",
        error_code(1, "the work failed (a worker died, the state cannot be written, ...)"),
        error_code(
            2,
            "bad usage or configuration: a flag, a value, or a state file of other parameters"
        ),
        error_code(130, "interrupted by SIGINT (128 + the signal number; SIGTERM: 143)")
    )]
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
    #[argh(
        subcommand,
        name = "pi",
        example = "pifork pi --terms 1e10 --correct\npifork pi --terms 1e9 --workers 2 --json",
        note = "On a terminal a progress line (chunks, terms/s, time left) shows on stderr\n\
                while the work runs; none with --json or when stderr is not a terminal."
    )]
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
        /// print one JSON object instead of text
        #[argh(switch)]
        json: bool,
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
    struct InfoArgs {
        /// print one JSON object instead of text
        #[argh(switch)]
        json: bool,
    }

    /// Run as a service: keep every core on the series toward N terms, durably, resumably.
    #[derive(FromArgs)]
    #[argh(
        subcommand,
        name = "serve",
        example = "pifork serve --terms 1e13 --state-dir /tmp/pi --exit-when-done",
        note = "Normally run by systemd (pifork.service): `systemctl status pifork` shows the\n\
                progress, `systemctl reload pifork` logs it. Exit code 2 (usage, or a state\n\
                file of other parameters) is not worth a restart; `systemctl clean\n\
                --what=state pifork` starts over."
    )]
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
    #[argh(
        subcommand,
        name = "status",
        example = "sudo pifork status\npifork status --state-dir /tmp/pi --json",
        note = "The service's state is readable by root only: run it with sudo. Without the\n\
                permission it shows what systemd publishes to everyone (its STATUS= line)."
    )]
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
        /// Bad usage: exit 2.
        Usage(String),
        /// The work failed; a configuration error (exit 2) or anything else (exit 1).
        Run(Error),
        /// Standard output could not be written.
        Output(std::io::Error),
    }

    impl<E: Into<Error>> From<E> for Failure {
        fn from(e: E) -> Self {
            Failure::Run(e.into())
        }
    }

    /// Exit code of a bad command line or configuration: the service's unit does not restart
    /// on it (RestartPreventExitStatus=), since trying again cannot help.
    const USAGE: u8 = 2;

    /// True for an error that no retry can fix: the configuration must change.
    fn is_configuration(e: &Error) -> bool {
        matches!(
            e,
            Error::State(
                StateError::OtherParameters { .. }
                    | StateError::OtherKernel { .. }
                    | StateError::OtherVersion { .. }
                    | StateError::Corrupt { .. }
                    | StateError::NotRegular { .. }
                    | StateError::TooLarge { .. }
                    | StateError::TooManyChunks { .. }
            )
        )
    }

    /// What the command line says once the habits argh lacks are taken care of.
    #[derive(Debug, PartialEq)]
    enum Shimmed {
        /// Arguments for argh (without the program name).
        Args(Vec<String>),
        /// `--version` or `-V`.
        Version,
    }

    /// Takes the arguments as the OS gave them (the program name first) and does what argh
    /// does not: refuses an argument that is not UTF-8 (std::env::args would panic), answers
    /// `--version`/`-V`, reads `-h` as `--help` and `--name=value` as `--name value`. After
    /// `--` nothing is touched.
    fn shim(raw: impl IntoIterator<Item = OsString>) -> Result<Shimmed, String> {
        let mut args = Vec::new();
        let mut options_end = false;
        for (i, arg) in raw.into_iter().enumerate().skip(1) {
            let Some(arg) = arg.to_str() else {
                return Err(format!("argument {i} is not valid UTF-8: {arg:?}"));
            };
            if options_end {
                args.push(arg.to_string());
                continue;
            }
            match arg {
                "--" => {
                    options_end = true;
                    args.push(arg.to_string());
                }
                "--version" | "-V" if args.is_empty() => return Ok(Shimmed::Version),
                "-h" => args.push("--help".to_string()),
                _ => match arg.split_once('=') {
                    Some((name, value)) if name.starts_with("--") && name.len() > 2 => {
                        args.push(name.to_string());
                        args.push(value.to_string());
                    }
                    _ => args.push(arg.to_string()),
                },
            }
        }
        Ok(Shimmed::Args(args))
    }

    /// Writes `text` to stdout: a closed pipe ends the output quietly, any other failure is
    /// [`Failure::Output`].
    fn emit(text: &str) -> Result<(), Failure> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(Failure::Output)
    }

    /// [`emit`] with a newline.
    fn emit_line(text: &str) -> Result<(), Failure> {
        emit(&format!("{text}\n"))
    }

    pub(crate) fn main() -> ProcessExit {
        // A spawned worker runs its entry point here and exits; nothing below runs in it.
        pifork_pi::register_entries();
        pifork::main_guard();
        let args = match shim(std::env::args_os()) {
            Ok(Shimmed::Args(args)) => args,
            Ok(Shimmed::Version) => {
                return finish(emit_line(&format!("pifork {}", env!("CARGO_PKG_VERSION"))));
            }
            Err(e) => return finish(Err(Failure::Usage(format!("{e} (see pifork --help)")))),
        };
        let strs: Vec<&str> = args.iter().map(String::as_str).collect();
        let cli = match Cli::from_args(&["pifork"], &strs) {
            Ok(cli) => cli,
            Err(early) => {
                return match early.status {
                    Ok(()) => finish(emit(&early.output)),
                    Err(()) => {
                        let first = early.output.lines().next().unwrap_or("invalid arguments");
                        finish(Err(Failure::Usage(format!("{first} (see pifork --help)"))))
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
            return finish(Err(Failure::Usage(e.to_string())));
        }
        // The fork server must start while this process is still small and single-threaded.
        if method == StartMethod::Forkserver
            && let Err(e) = forkserver::start()
        {
            return finish(Err(e.into()));
        }
        let outcome = match cli.command {
            Command::Pi(a) => run_pi(a),
            Command::Race(a) => run_race(a),
            Command::Bench(a) => run_bench(a),
            Command::Serve(a) => run_serve(a),
            Command::Status(a) => run_status(a),
            Command::Info(a) => run_info(a),
        };
        forkserver::stop();
        finish(outcome)
    }

    /// The exit code of `outcome`, after its one line on stderr.
    fn finish(outcome: Result<(), Failure>) -> ProcessExit {
        match outcome {
            Ok(()) => ProcessExit::SUCCESS,
            // The reader has gone (`pifork info | head -1`): nothing more to say to anyone.
            Err(Failure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                ProcessExit::SUCCESS
            }
            Err(Failure::Output(e)) => {
                logging::fatal(&format!("cannot write the output: {e}"));
                ProcessExit::FAILURE
            }
            Err(Failure::Usage(msg)) => {
                logging::fatal(&msg);
                ProcessExit::from(USAGE)
            }
            Err(Failure::Run(Error::Interrupted { signal })) => {
                logging::fatal(&Error::Interrupted { signal }.to_string());
                ProcessExit::from((128 + signal) as u8)
            }
            Err(Failure::Run(e)) if is_configuration(&e) => {
                let mut msg = e.to_string();
                if std::env::var_os("INVOCATION_ID").is_some() {
                    msg.push_str(
                        "; for the service, `systemctl clean --what=state pifork` starts over, \
                         or `systemctl edit pifork` sets the flags the state was made with",
                    );
                }
                logging::fatal(&msg);
                ProcessExit::from(USAGE)
            }
            Err(Failure::Run(e)) => {
                logging::fatal(&e.to_string());
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
            workers: worker_count(a.workers, None)?,
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
        let path = dir.join(FILE);
        // Non-blocking and without following a link: a FIFO planted there must not hang this
        // check (the load below refuses it with one line).
        let probe = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&path);
        if let Err(e) = probe
            && e.kind() == std::io::ErrorKind::PermissionDenied
        {
            return published_status(&path, a.json);
        }
        let Some(state) = State::load(&dir)? else {
            return Err(Failure::Run(Error::State(StateError::NoState { path })));
        };
        if a.json { emit_line(&status_json(&state)) } else { emit(&status_text(&state, &dir)) }
    }

    /// `pifork status` without the right to read the state (it is the service's, private):
    /// says so, and shows what systemd publishes to everyone, the service's STATUS= line.
    fn published_status(path: &std::path::Path, json: bool) -> Result<(), Failure> {
        let denied = format!(
            "cannot read {}: permission denied (the state is private to the service; \
             `sudo pifork status` shows it)",
            path.display()
        );
        let published = std::process::Command::new("systemctl")
            .args(["show", "--property=StatusText", "--value", "pifork.service"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|text| !text.is_empty());
        let Some(text) = published else {
            return Err(Failure::Run(Error::State(StateError::Private {
                path: path.to_path_buf(),
            })));
        };
        logging::note(&format!("{denied}; systemd's status line of pifork.service follows"));
        if json {
            emit_line(&format!("{{\"service_status\":{}}}", json_string(&text)))
        } else {
            emit_line(&format!("pifork.service: {text}"))
        }
    }

    /// The worker count: the flag, else the CPUs available; at least 1. Above
    /// [`pool::worker_bound`] it is capped, and said so (unless `chunks`, the chunks there are
    /// to share, caps it further: then [`note_clamped`] says that instead).
    fn worker_count(flag: Option<u64>, chunks: Option<usize>) -> Result<usize, Failure> {
        match flag {
            None => Ok(pifork::cpu_count()),
            Some(0) => Err(Failure::Usage("--workers must be at least 1".into())),
            Some(n) => {
                let n = usize::try_from(n).ok().filter(|&n| n <= 4096).ok_or_else(|| {
                    Failure::Usage(format!("--workers {n} is too many (at most 4096)"))
                })?;
                let bound = pool::worker_bound();
                let n = if n > bound {
                    if chunks.is_none_or(|c| c > bound) {
                        logging::note(&format!(
                            "--workers {n} capped to {bound} ({} per available CPU): more would \
                             only slow every stop",
                            pool::WORKERS_PER_CPU
                        ));
                    }
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
        let workers = worker_count(a.workers, Some(plan::chunk_plan(a.terms).len()))?;
        let signals = shutdown_signals()?;
        let on_signal = || signals.take().map(|signal| Error::Interrupted { signal });
        note_clamped(a.workers, a.terms);
        let mut job = engine::PiJob::new(a.terms, workers);
        job.pin = !a.no_pin;
        job.start = a.start;
        let line = progress_line("pi", a.json);
        let report = engine::run(&job, Some((signals.fd(), &on_signal)));
        drop(line);
        let report = report?;
        if a.json {
            emit_line(&pi_json(&report, a.correct))
        } else {
            emit(&pi_text(&report, a.correct))
        }
    }

    /// A run's progress line on stderr, while it lives: only when stderr is a terminal and the
    /// output is not JSON. Dropping it erases the line.
    struct ProgressGuard;

    impl Drop for ProgressGuard {
        fn drop(&mut self) {
            drop(engine::observe(None));
        }
    }

    fn progress_line(label: &str, json: bool) -> Option<ProgressGuard> {
        if json || !std::io::stderr().is_terminal() {
            return None;
        }
        engine::observe(Some(TerminalLine::new(label).into_observer()));
        Some(ProgressGuard)
    }

    /// Says on stderr when more workers were asked for than there are chunks to share.
    fn note_clamped(asked: Option<u64>, terms: u64) {
        let chunks = plan::chunk_plan(terms).len();
        if let Some(workers) = asked
            && workers > chunks as u64
        {
            logging::note(&format!(
                "--workers {workers}: {terms} terms make only {chunks} {}, so {chunks} {} run{}",
                if chunks == 1 { "chunk" } else { "chunks" },
                if chunks == 1 { "worker" } else { "workers" },
                if chunks == 1 { "s" } else { "" }
            ));
        }
    }

    fn run_race(a: RaceArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        let workers = worker_count(a.workers, None)?;
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
        if a.json { emit_line(&race_json(&report)) } else { emit(&race_text(&report)) }
    }

    fn run_bench(a: BenchArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        let max_workers = worker_count(a.max_workers, None)?;
        if a.repeat == 0 || a.repeat > 1000 {
            return Err(Failure::Usage("--repeat must be between 1 and 1000".into()));
        }
        let repeat = a.repeat as usize;
        let signals = shutdown_signals()?;
        let on_signal = || signals.take().map(|signal| Error::Interrupted { signal });
        let cancel: Option<engine::Cancel<'_>> = Some((signals.fd(), &on_signal));
        let terminal = !a.json && std::io::stderr().is_terminal();
        let mut phase = terminal.then(|| TerminalLine::new("bench"));
        if let Some(line) = &mut phase {
            line.show("bench: start+join round trips");
        }
        let round_trips = bench::round_trips(200, cancel)?;
        if a.start_methods {
            drop(phase);
            return if a.json {
                emit_line(&round_trips_json(&round_trips))
            } else {
                emit(&round_trips_text(&round_trips))
            };
        }
        let kernel_terms = (a.terms / 10).clamp(1 << 20, 100_000_000);
        if let Some(line) = &mut phase {
            line.show("bench: the kernel on one core");
        }
        let kernel = bench::kernel_figures(kernel_terms, repeat);
        drop(phase);
        let line = progress_line("bench: scaling", a.json);
        let rows = bench::scaling(a.terms, max_workers, repeat, a.start, cancel);
        drop(line);
        let rows = rows?;
        let report =
            BenchReport { terms: a.terms, repeat, kernel, round_trips, start: a.start, rows };
        if a.json { emit_line(&bench_json(&report)) } else { emit(&bench_text(&report)) }
    }

    fn run_info(a: InfoArgs) -> Result<(), Failure> {
        let facts = info::system_info();
        if a.json { emit_line(&info::info_json(&facts)) } else { emit(&info::info_text(&facts)) }
    }
}
