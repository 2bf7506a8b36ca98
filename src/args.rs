//! `pifork`'s flags: the argh structs, whose doc comments are the `--help` text (and so the man
//! page, doc/pifork.1), and their parsing through the shared shim of [`pifork_pi::cli`].

use std::ffi::OsString;

use argh::FromArgs;
use pifork::StartMethod;
use pifork_pi::cli::{self, Failure, Parsed, parse_count};
use pifork_pi::via::Via;

/// Parses `pifork`'s arguments, as the OS gave them (the program name first).
pub(crate) fn parse(raw: impl IntoIterator<Item = OsString>) -> Result<Parsed<Cli>, Failure> {
    cli::parse("pifork", raw)
}

impl Command {
    /// The start method the command's workers use: the fork server must start before the
    /// process grows.
    pub(crate) fn start_method(&self) -> StartMethod {
        match self {
            Command::Pi(a) => a.start,
            Command::Race(a) => a.start,
            Command::Bench(a) if a.start_methods => StartMethod::Forkserver,
            Command::Bench(a) => a.start,
            Command::Serve(a) => a.start,
            Command::Status(_) | Command::Info(_) => StartMethod::Fork,
        }
    }

    /// True for a command that runs the pi kernel, which must then be one this CPU has.
    pub(crate) fn runs_kernel(&self) -> bool {
        match self {
            Command::Pi(_) | Command::Race(_) | Command::Bench(_) | Command::Serve(_) => true,
            Command::Status(_) | Command::Info(_) => false,
        }
    }

    /// The log level unless `RUST_LOG` says otherwise: the service logs its progress.
    pub(crate) fn log_level(&self) -> &'static str {
        if matches!(self, Command::Serve(_)) { "info" } else { "warn" }
    }
}

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
pub(crate) struct Cli {
    #[argh(subcommand)]
    pub(crate) command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub(crate) enum Command {
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
pub(crate) struct PiArgs {
    /// terms of the series (default 100000000; accepts 1e8 and 100_000_000)
    #[argh(option, from_str_fn(parse_count), default = "100_000_000")]
    pub(crate) terms: u64,
    /// worker processes (default: the CPUs this process may use)
    #[argh(option, from_str_fn(parse_count))]
    pub(crate) workers: Option<u64>,
    /// do not pin workers to CPUs
    #[argh(switch)]
    pub(crate) no_pin: bool,
    /// print one JSON object instead of text
    #[argh(switch)]
    pub(crate) json: bool,
    /// also print the estimate corrected with the series' remainder expansion
    #[argh(switch)]
    pub(crate) correct: bool,
    /// start method of the workers: fork (default), spawn or forkserver
    #[argh(option, default = "StartMethod::Fork")]
    pub(crate) start: StartMethod,
    /// how workers share the job: pipe (default: the engine, results over each worker's
    /// pipe), pool, queue or shared
    #[argh(option, default = "Via::Pipe")]
    pub(crate) via: Via,
}

/// Start workers with different amounts of work; report the first to finish, stop the rest.
#[derive(FromArgs)]
#[argh(subcommand, name = "race")]
pub(crate) struct RaceArgs {
    /// runners (default: the CPUs this process may use)
    #[argh(option, from_str_fn(parse_count))]
    pub(crate) workers: Option<u64>,
    /// seed of the work sizes (default 1)
    #[argh(option, from_str_fn(parse_count), default = "1")]
    pub(crate) seed: u64,
    /// the largest amount of work, in terms (default 30000000)
    #[argh(option, from_str_fn(parse_count), default = "30_000_000")]
    pub(crate) terms: u64,
    /// wait for every runner instead of terminating the losers
    #[argh(switch)]
    pub(crate) join_all: bool,
    /// print one JSON object instead of text
    #[argh(switch)]
    pub(crate) json: bool,
    /// start method of the runners: fork (default), spawn or forkserver
    #[argh(option, default = "StartMethod::Fork")]
    pub(crate) start: StartMethod,
}

/// Measure the kernel, the scaling over worker counts and the start+join round trip.
#[derive(FromArgs)]
#[argh(subcommand, name = "bench")]
pub(crate) struct BenchArgs {
    /// terms per scaling run (default 1e10)
    #[argh(option, from_str_fn(parse_count), default = "10_000_000_000")]
    pub(crate) terms: u64,
    /// largest worker count (default: the CPUs this process may use)
    #[argh(option, from_str_fn(parse_count))]
    pub(crate) max_workers: Option<u64>,
    /// runs per figure; medians are reported (default 5)
    #[argh(option, from_str_fn(parse_count), default = "5")]
    pub(crate) repeat: u64,
    /// print one JSON object instead of a table
    #[argh(switch)]
    pub(crate) json: bool,
    /// start method of the scaling runs' workers: fork (default), spawn or forkserver
    #[argh(option, default = "StartMethod::Fork")]
    pub(crate) start: StartMethod,
    /// only compare the start+join round trip of the three start methods
    #[argh(switch)]
    pub(crate) start_methods: bool,
    /// only compare the ways of `pifork pi --via` on the same job: --terms on --max-workers
    /// workers, the median of --repeat runs each
    #[argh(switch)]
    pub(crate) sharing: bool,
    /// only measure what saving a finished chunk of the service's state costs, at 10^3, 10^4
    /// and 10^5 chunks
    #[argh(switch)]
    pub(crate) state_saving: bool,
    /// with --state-saving: the directory to measure in, on the file system the state will
    /// live on (default: $TMPDIR, else /tmp)
    #[argh(option)]
    pub(crate) state_dir: Option<std::path::PathBuf>,
}

/// Show the kernel, whether pidfd works, the CPUs available, the backend chosen and the
/// pi kernel's path.
#[derive(FromArgs)]
#[argh(subcommand, name = "info")]
pub(crate) struct InfoArgs {
    /// print one JSON object instead of text
    #[argh(switch)]
    pub(crate) json: bool,
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
pub(crate) struct ServeArgs {
    /// terms of the series (default 1e12)
    #[argh(option, from_str_fn(parse_count), default = "1_000_000_000_000")]
    pub(crate) terms: u64,
    /// worker processes (default: the CPUs this process may use)
    #[argh(option, from_str_fn(parse_count))]
    pub(crate) workers: Option<u64>,
    /// terms per chunk, the unit of work and of saved progress (default 4e9)
    #[argh(option, from_str_fn(parse_count), default = "4_000_000_000")]
    pub(crate) chunk: u64,
    /// where progress is kept (default: $STATE_DIRECTORY, else /var/lib/pifork)
    #[argh(option)]
    pub(crate) state_dir: Option<std::path::PathBuf>,
    /// exit once the result is recorded instead of idling until stopped
    #[argh(switch)]
    pub(crate) exit_when_done: bool,
    /// start method of the workers: fork (default), spawn or forkserver
    #[argh(option, default = "StartMethod::Fork")]
    pub(crate) start: StartMethod,
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
pub(crate) struct StatusArgs {
    /// where progress is kept (default: $STATE_DIRECTORY, else /var/lib/pifork)
    #[argh(option)]
    pub(crate) state_dir: Option<std::path::PathBuf>,
    /// print one JSON object instead of text
    #[argh(switch)]
    pub(crate) json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn parsed(args: &[&str]) -> Result<Parsed<Cli>, Failure> {
        parse(std::iter::once("pifork").chain(args.iter().copied()).map(OsString::from))
    }

    fn command(args: &[&str]) -> Command {
        match parsed(args) {
            Ok(Parsed::Run(cli)) => cli.command,
            Ok(Parsed::Print(text)) => panic!("{args:?}: printed {text}"),
            Err(e) => panic!("{args:?}: {:?}", e.message()),
        }
    }

    fn usage(args: &[&str]) -> String {
        match parsed(args) {
            Err(Failure::Usage(msg)) => msg,
            Err(e) => panic!("{args:?}: not a usage error: {:?}", e.message()),
            Ok(_) => panic!("{args:?} accepted"),
        }
    }

    #[test]
    fn defaults_and_counts() {
        let Command::Pi(a) = command(&["pi"]) else { panic!("not pi") };
        assert_eq!((a.terms, a.workers, a.start), (100_000_000, None, StartMethod::Fork));
        assert!(!a.no_pin && !a.json && !a.correct);
        let Command::Pi(a) = command(&["pi", "--terms=1e9", "--workers", "2", "--start=spawn"])
        else {
            panic!("not pi")
        };
        assert_eq!((a.terms, a.workers, a.start), (1_000_000_000, Some(2), StartMethod::Spawn));
        let Command::Serve(a) = command(&["serve", "--chunk", "4_000", "--exit-when-done"]) else {
            panic!("not serve")
        };
        assert_eq!((a.terms, a.chunk, a.exit_when_done), (1_000_000_000_000, 4000, true));
        let Command::Bench(a) = command(&["bench"]) else { panic!("not bench") };
        assert_eq!((a.terms, a.repeat, a.max_workers), (10_000_000_000, 5, None));
    }

    #[test]
    fn the_start_method_decides_the_fork_server() {
        let method = |args: &[&str]| command(args).start_method();
        assert_eq!(method(&["pi"]), StartMethod::Fork);
        assert_eq!(method(&["race", "--start", "forkserver"]), StartMethod::Forkserver);
        assert_eq!(method(&["bench", "--start-methods"]), StartMethod::Forkserver);
        assert_eq!(method(&["serve", "--start", "spawn"]), StartMethod::Spawn);
        assert_eq!(method(&["status"]), StartMethod::Fork);
        assert!(command(&["serve"]).runs_kernel() && !command(&["info"]).runs_kernel());
        assert_eq!(command(&["serve"]).log_level(), "info");
        assert_eq!(command(&["pi"]).log_level(), "warn");
    }

    #[test]
    fn help_and_version_are_text_to_print() {
        for args in [&["--help"][..], &["-h"], &["pi", "-h"], &["help", "serve"]] {
            let Ok(Parsed::Print(text)) = parsed(args) else { panic!("{args:?}: no help") };
            assert!(text.starts_with("Usage: pifork"), "{args:?}: {text}");
        }
        let Ok(Parsed::Print(text)) = parsed(&["-V"]) else { panic!("no version") };
        assert_eq!(text, format!("pifork {}\n", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn bad_arguments_are_one_usage_line() {
        for (args, says) in [
            (&["pi", "--terms", "abc"][..], "'abc' is not a whole number"),
            (&["pi", "--start", "vfork"], "vfork"),
            (&["pi", "--bogus"], "Unrecognized argument: --bogus"),
            (&["frobnicate"], "Unrecognized argument: frobnicate"),
            (&[], "One of the following subcommands must be present"),
        ] {
            let msg = usage(args);
            assert!(msg.contains(says) && msg.ends_with(" (see pifork --help)"), "{args:?}: {msg}");
            assert_eq!(msg.lines().count(), 1, "{msg}");
        }
        let raw = ["pifork", "pi"].map(OsString::from).into_iter();
        let raw = raw.chain([OsString::from_vec(b"--terms=\xff1".to_vec())]);
        let Err(Failure::Usage(msg)) = parse(raw) else { panic!("non-UTF-8 accepted") };
        assert_eq!(msg, "argument 2 is not valid UTF-8: \"--terms=\\xFF1\" (see pifork --help)");
    }
}
