//! `pifork`: computes pi with one pinned worker process per core, races workers, runs as a
//! systemd service, benchmarks, and reports what the system offers. The flags are parsed in
//! `args.rs`, checked here, and handed to `pifork_pi`, which does the work; a failure ends the
//! program with its one line and the exit code `pifork_pi::cli::Failure::exit_code` decides.
//! The appliance runs on Linux; on Windows, where pifork is a library with the spawn start
//! method, this program only serves as a spawned child and otherwise says where the command
//! line runs.

#[cfg(target_os = "linux")]
mod args;

#[cfg(target_os = "linux")]
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

/// The command line on Linux: parse, check, dispatch, one exit.
#[cfg(target_os = "linux")]
mod command_line {
    use std::process::ExitCode;

    use pifork::{SignalPipe, StartMethod, forkserver};
    use pifork_pi::cli::{
        self, Failure, Interrupts, Parsed, check_terms, emit, emit_report, pi_workers, worker_count,
    };
    use pifork_pi::report::{
        bench_json, bench_text, pi_json, pi_text, race_json, race_text, round_trips_json,
        round_trips_text, sharing_json, sharing_text, state_saving_json, state_saving_text,
        status_json, status_text,
    };
    use pifork_pi::service::state::check_job;
    use pifork_pi::service::status::{self, Status, published_json, published_text};
    use pifork_pi::{bench, engine, info, kernel, logging, progress, race, service, suite, via};
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

    use crate::args::{self, Command};

    pub(crate) fn main() -> ExitCode {
        // A spawned worker runs its entry point here and exits; nothing below runs in it.
        pifork_pi::register_entries();
        pifork::main_guard();
        let command = match args::parse(std::env::args_os()) {
            Ok(Parsed::Run(cli)) => cli.command,
            Ok(Parsed::Print(text)) => return finish(emit(&text)),
            Err(failure) => return finish(Err(failure)),
        };
        logging::init(command.log_level());
        // A forced kernel path this CPU lacks is bad input: refused before any work starts.
        if command.runs_kernel()
            && let Err(e) = kernel::selected()
        {
            return finish(Err(Failure::Usage(e.to_string())));
        }
        // The fork server must start while this process is still small and single-threaded.
        if command.start_method() == StartMethod::Forkserver
            && let Err(e) = forkserver::start()
        {
            return finish(Err(e.into()));
        }
        let outcome = match command {
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
    fn finish(outcome: Result<(), Failure>) -> ExitCode {
        let Err(failure) = outcome else {
            return ExitCode::SUCCESS;
        };
        if let Some(line) = failure.message() {
            logging::fatal(&line);
        }
        ExitCode::from(failure.exit_code())
    }

    fn run_pi(a: args::PiArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        let mut job = engine::PiJob::new(a.terms, pi_workers(a.workers, a.terms)?);
        job.pin = !a.no_pin;
        job.start = a.start;
        // The library's ways show no progress and stop on a signal's default action.
        let report = if a.via == via::Via::Pipe {
            let line = progress::show("pi", a.json);
            let report = Interrupts::catch()?.run(|cancel| engine::run(&job, cancel))?;
            drop(line);
            report
        } else {
            via::run(&job, a.via, None)?
        };
        emit_report(a.json, || pi_json(&report, a.correct), || pi_text(&report, a.correct))
    }

    fn run_race(a: args::RaceArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        let workers = worker_count(a.workers, None)?;
        let report = Interrupts::catch()?
            .run(|cancel| race::race(a.start, workers, a.seed, a.terms, a.join_all, cancel))?;
        emit_report(a.json, || race_json(&report), || race_text(&report))
    }

    fn run_bench(a: args::BenchArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        let max_workers = worker_count(a.max_workers, None)?;
        if a.repeat == 0 || a.repeat > 1000 {
            return Err(Failure::Usage("--repeat must be between 1 and 1000".into()));
        }
        if a.sharing {
            if a.start_methods || a.state_saving {
                return Err(Failure::Usage(
                    "--sharing, --start-methods and --state-saving are three benchmarks: give one"
                        .into(),
                ));
            }
            let mut job = engine::PiJob::new(a.terms, pi_workers(a.max_workers, a.terms)?);
            job.start = a.start;
            let rows = bench::sharing(&job, a.repeat as usize)?;
            return emit_report(
                a.json,
                || sharing_json(&rows, a.terms, job.workers),
                || sharing_text(&rows, a.terms, job.workers),
            );
        }
        if let Some(dir) = cli::saving_dir(a.state_saving, a.start_methods, a.state_dir)? {
            let saving = bench::state_saving(&dir, &bench::SAVING_CHUNKS)?;
            return emit_report(
                a.json,
                || state_saving_json(&saving),
                || state_saving_text(&saving),
            );
        }
        if a.start_methods {
            let trips = Interrupts::catch()?.run(|cancel| suite::round_trips(a.json, cancel))?;
            return emit_report(a.json, || round_trips_json(&trips), || round_trips_text(&trips));
        }
        let suite = suite::Suite {
            terms: a.terms,
            max_workers,
            repeat: a.repeat as usize,
            start: a.start,
            quiet: a.json,
        };
        let report = Interrupts::catch()?.run(|cancel| suite.run(cancel))?;
        emit_report(a.json, || bench_json(&report), || bench_text(&report))
    }

    fn run_serve(a: args::ServeArgs) -> Result<(), Failure> {
        check_terms(a.terms)?;
        if a.chunk == 0 {
            return Err(Failure::Usage("--chunk must be at least 1".into()));
        }
        check_job(a.terms, a.chunk).map_err(|e| Failure::Usage(e.to_string()))?;
        let cfg = service::ServeConfig {
            terms: a.terms,
            chunk: a.chunk.min(a.terms),
            workers: worker_count(a.workers, None)?,
            state_dir: cli::state_dir(a.state_dir)?,
            exit_when_done: a.exit_when_done,
            start: a.start,
        };
        let signals = SignalPipe::new(&[SIGINT, SIGTERM, SIGHUP])?;
        service::serve(&cfg, &signals)?;
        Ok(())
    }

    fn run_status(a: args::StatusArgs) -> Result<(), Failure> {
        let dir = cli::state_dir(a.state_dir)?;
        match status::read(&dir)? {
            Status::State(s) => emit_report(a.json, || status_json(&s), || status_text(&s, &dir)),
            Status::Published(text) => {
                emit_report(a.json, || published_json(&text), || published_text(&text))
            }
        }
    }

    fn run_info(a: args::InfoArgs) -> Result<(), Failure> {
        let facts = info::system_info();
        emit_report(a.json, || info::info_json(&facts), || info::info_text(&facts))
    }
}
