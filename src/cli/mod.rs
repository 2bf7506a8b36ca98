//! The command line both programs share, `pifork` and `pifork-mpi`: the habits argh lacks
//! (non-UTF-8 arguments, `--name=value`, `-h`, `--version`), its early exits, the limits of the
//! counts they take, and a failure turned into one line and an exit code.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use argh::FromArgs;
use pifork::SignalPipe;
use signal_hook::consts::{SIGINT, SIGTERM};

use super::engine::Cancel;
use super::error::Error;
use super::service::{self, state::StateError};
use super::{logging, plan, pool};

mod count;

pub use count::parse_count;

/// Exit code of a bad command line or configuration: the service's unit does not restart on it
/// (RestartPreventExitStatus=), since trying again cannot help.
pub const USAGE: u8 = 2;

/// Exit code of work that failed.
pub const FAILED: u8 = 1;

/// The most worker processes a flag may ask for.
pub const MAX_WORKERS: u64 = 4096;

/// What a command line asks for, once parsed.
#[derive(Debug, PartialEq)]
pub enum Parsed<T> {
    /// Work: the parsed arguments.
    Run(T),
    /// Only this text on stdout, then exit 0: `--help` or `--version`.
    Print(String),
}

/// Parses the arguments as the OS gave them (the program name first) into `T`, doing first
/// what argh does not: an argument that is not UTF-8 is refused (`std::env::args` would panic),
/// `-h` is `--help`, `--name=value` is `--name value` (not after `--`), and `--version` or
/// `-V` in first place prints the workspace's version, which every program of it shares.
/// `--help` and `--version` become [`Parsed::Print`], a bad argument a [`Failure::Usage`] of
/// one line that points to `PROGRAM --help`.
pub fn parse<T: FromArgs>(
    program: &str,
    raw: impl IntoIterator<Item = OsString>,
) -> Result<Parsed<T>, Failure> {
    let see_help = |e: &str| Failure::Usage(format!("{e} (see {program} --help)"));
    let args = match shim(raw) {
        Ok(Shimmed::Args(args)) => args,
        Ok(Shimmed::Version) => {
            return Ok(Parsed::Print(format!("{program} {}\n", env!("CARGO_PKG_VERSION"))));
        }
        Err(e) => return Err(see_help(&e)),
    };
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    match T::from_args(&[program], &strs) {
        Ok(parsed) => Ok(Parsed::Run(parsed)),
        Err(early) => match early.status {
            Ok(()) => Ok(Parsed::Print(early.output)),
            Err(()) => Err(see_help(early.output.lines().next().unwrap_or("invalid arguments"))),
        },
    }
}

/// What the command line says once the habits argh lacks are taken care of.
#[derive(Debug, PartialEq)]
enum Shimmed {
    /// Arguments for argh (without the program name).
    Args(Vec<String>),
    /// `--version` or `-V`.
    Version,
}

/// Takes the arguments as the OS gave them (the program name first) and does what argh does
/// not: refuses an argument that is not UTF-8 (std::env::args would panic), answers
/// `--version`/`-V`, reads `-h` as `--help` and `--name=value` as `--name value`. After `--`
/// nothing is touched.
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

/// A run's failure, turned into one line ([`Failure::message`]) and an exit code
/// ([`Failure::exit_code`]) here and nowhere else.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage: exit 2.
    Usage(String),
    /// The work failed: a configuration error (exit 2), a signal (128 + its number) or
    /// anything else (exit 1).
    Run(Error),
    /// Standard output could not be written: exit 1, or 0 when its reader has gone.
    Output(std::io::Error),
    /// A signal handler could not be installed: exit 1.
    Signals(std::io::Error),
}

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Run(e.into())
    }
}

impl Failure {
    /// The exit code the program ends with: every failure is named here.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => USAGE,
            // The reader has gone (`pifork info | head -1`): nothing more to say to anyone.
            Failure::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            Failure::Output(_) | Failure::Signals(_) => FAILED,
            Failure::Run(Error::Interrupted { signal }) => (128 + signal) as u8,
            Failure::Run(e) if is_configuration(e) => USAGE,
            Failure::Run(
                Error::Process(_)
                | Error::WorkerDied { .. }
                | Error::WorkerStuck { .. }
                | Error::MeasurementFailed { .. }
                | Error::Os { .. }
                | Error::TooManyWorkers { .. }
                | Error::State(_)
                | Error::ServiceFailed { .. }
                | Error::Via(_)
                | Error::Pool(_)
                | Error::ChunkPanicked { .. },
            ) => FAILED,
        }
    }

    /// The one line the program ends with on stderr, after its name; none when the reader of
    /// the output has gone. Under systemd (`$INVOCATION_ID`) a configuration error says how the
    /// service starts over.
    pub fn message(&self) -> Option<String> {
        match self {
            Failure::Usage(msg) => Some(msg.clone()),
            Failure::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => None,
            Failure::Output(e) => Some(format!("cannot write the output: {e}")),
            Failure::Signals(e) => Some(format!("signal handler: {e}")),
            Failure::Run(e)
                if is_configuration(e) && std::env::var_os("INVOCATION_ID").is_some() =>
            {
                Some(format!(
                    "{e}; for the service, `systemctl clean --what=state pifork` starts over, or \
                     `systemctl edit pifork` sets the flags the state was made with"
                ))
            }
            Failure::Run(e) => Some(e.to_string()),
        }
    }
}

/// True for an error that no retry can fix: the configuration must change.
fn is_configuration(e: &Error) -> bool {
    let Error::State(e) = e else {
        return false;
    };
    match e {
        StateError::OtherParameters { .. }
        | StateError::OtherKernel { .. }
        | StateError::OtherVersion { .. }
        | StateError::Corrupt { .. }
        | StateError::NotRegular { .. }
        | StateError::TooLarge { .. }
        | StateError::TooManyChunks { .. } => true,
        StateError::Busy { .. }
        | StateError::EmptyDir
        | StateError::Implausible { .. }
        | StateError::Io { .. }
        | StateError::NotReplaced { .. }
        | StateError::NoTempName { .. }
        | StateError::NoState { .. }
        | StateError::Private { .. } => false,
    }
}

/// Writes `text` to stdout: a closed pipe ends the output quietly, any other failure is
/// [`Failure::Output`].
pub fn emit(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(Failure::Output)
}

/// [`emit`] with a newline.
pub fn emit_line(text: &str) -> Result<(), Failure> {
    emit(&format!("{text}\n"))
}

/// Writes a report to stdout: one JSON object and a newline when `json`, else the text as it
/// is (see [`emit`]).
pub fn emit_report(
    json: bool,
    as_json: impl FnOnce() -> String,
    as_text: impl FnOnce() -> String,
) -> Result<(), Failure> {
    if json { emit_line(&as_json()) } else { emit(&as_text()) }
}

/// SIGINT and SIGTERM, caught from the moment this is made: the runs it makes wait on them
/// and then end with [`Error::Interrupted`].
#[derive(Debug)]
pub struct Interrupts(SignalPipe);

impl Interrupts {
    /// Catches SIGINT and SIGTERM from now on (their default action no longer runs).
    pub fn catch() -> Result<Interrupts, Failure> {
        Ok(Interrupts(SignalPipe::new(&[SIGINT, SIGTERM])?))
    }

    /// Runs `work` with the [`Cancel`] that stops its run on a caught signal.
    pub fn run<T>(
        &self,
        work: impl FnOnce(Option<Cancel<'_>>) -> super::Result<T>,
    ) -> Result<T, Failure> {
        let on_signal = || self.0.take().map(|signal| Error::Interrupted { signal });
        Ok(work(Some((self.0.fd(), &on_signal)))?)
    }
}

/// The state directory of `serve` and `status`: `--state-dir`, else the service's
/// ([`service::state_dir`]); `--state-dir ''` is a usage error, not the current directory.
pub fn state_dir(flag: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(d) = &flag {
        check_dir(d)?;
    }
    Ok(service::state_dir(flag))
}

/// A `--state-dir` value: not empty, and not a flag that argh took for the value
/// (`serve --state-dir --exit-when-done`); a directory named `-x` is given as `./-x`.
fn check_dir(dir: &std::path::Path) -> Result<(), Failure> {
    let text = dir.to_string_lossy();
    if text.is_empty() {
        return Err(Failure::Usage("--state-dir must not be empty".into()));
    }
    if text.starts_with('-') {
        return Err(Failure::Usage(format!(
            "--state-dir needs a directory, not the flag {text} (a directory whose name starts \
             with '-' is ./{text})"
        )));
    }
    Ok(())
}

/// `pifork bench --state-saving [--state-dir DIR]`: the existing directory to measure saving
/// in, or None when the benchmark is another one. `--state-dir` alone, or with
/// `--start-methods`, is a usage error.
pub fn saving_dir(
    saving: bool,
    start_methods: bool,
    dir: Option<PathBuf>,
) -> Result<Option<PathBuf>, Failure> {
    match (saving, start_methods, dir) {
        (false, _, None) => Ok(None),
        (false, _, Some(_)) => Err(Failure::Usage("--state-dir needs --state-saving".into())),
        (true, true, _) => Err(Failure::Usage(
            "--state-saving and --start-methods are two benchmarks: give one".into(),
        )),
        (true, false, None) => Ok(Some(std::env::temp_dir())),
        (true, false, Some(d)) => {
            check_dir(&d)?;
            if !d.is_dir() {
                return Err(Failure::Usage(format!(
                    "--state-dir {}: no such directory",
                    d.display()
                )));
            }
            Ok(Some(d))
        }
    }
}

/// Checks `--terms`: at least 1, at most [`pi::MAX_TERMS`](super::pi::MAX_TERMS).
pub fn check_terms(terms: u64) -> Result<(), Failure> {
    if terms == 0 {
        return Err(Failure::Usage("--terms must be at least 1".into()));
    }
    if terms > super::pi::MAX_TERMS {
        return Err(Failure::Usage(format!(
            "--terms {terms} is too large (at most {})",
            super::pi::MAX_TERMS
        )));
    }
    Ok(())
}

/// Checks a worker count given by `flag` (`--workers`): at least 1, at most [`MAX_WORKERS`].
pub fn check_workers(flag: &str, n: u64) -> Result<usize, Failure> {
    if n == 0 {
        return Err(Failure::Usage(format!("{flag} must be at least 1")));
    }
    usize::try_from(n)
        .ok()
        .filter(|_| n <= MAX_WORKERS)
        .ok_or_else(|| Failure::Usage(format!("{flag} {n} is too many (at most {MAX_WORKERS})")))
}

/// `pifork`'s worker count: `--workers`, else the CPUs available. Above
/// [`pool::worker_bound`] it is capped, and said so (unless `chunks`, the chunks there are to
/// share, caps it further: [`pi_workers`] says that instead); the resource limits are raised
/// to let that many run ([`pool::make_room`]), or the count is refused.
pub fn worker_count(flag: Option<u64>, chunks: Option<usize>) -> Result<usize, Failure> {
    let Some(n) = flag else {
        return Ok(pifork::cpu_count());
    };
    let n = check_workers("--workers", n)?;
    let bound = pool::worker_bound();
    let n = if n > bound {
        if chunks.is_none_or(|c| c > bound) {
            logging::note(&format!(
                "--workers {n} capped to {bound} ({} per available CPU): more would only slow \
                 every stop",
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

/// The worker count of `pifork pi` over `terms` ([`worker_count`]); says on stderr when more
/// workers were asked for than there are chunks to share.
pub fn pi_workers(flag: Option<u64>, terms: u64) -> Result<usize, Failure> {
    let chunks = plan::chunk_plan(terms).len();
    let workers = worker_count(flag, Some(chunks))?;
    if let Some(asked) = flag
        && asked > chunks as u64
    {
        logging::note(&format!(
            "--workers {asked}: {terms} terms make only {chunks} {}, so {chunks} {} run{}",
            if chunks == 1 { "chunk" } else { "chunks" },
            if chunks == 1 { "worker" } else { "workers" },
            if chunks == 1 { "s" } else { "" }
        ));
    }
    Ok(workers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn shimmed(args: &[&str]) -> Vec<String> {
        match shim(os(args)) {
            Ok(Shimmed::Args(args)) => args,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn the_shim_splits_equals_and_reads_h_as_help() {
        assert_eq!(shimmed(&["p", "pi", "--terms=1e8", "-h"]), ["pi", "--terms", "1e8", "--help"]);
        // A value may hold `=`; a lone `--=x` or `-x=y` is argh's to refuse.
        assert_eq!(shimmed(&["p", "--a=b=c", "--=x", "-x=y"]), ["--a", "b=c", "--=x", "-x=y"]);
        assert_eq!(shimmed(&["p", "--", "--terms=1", "-h"]), ["--", "--terms=1", "-h"]);
    }

    #[test]
    fn the_shim_answers_version_only_in_first_place() {
        assert_eq!(shim(os(&["p", "--version"])), Ok(Shimmed::Version));
        assert_eq!(shim(os(&["p", "-V", "pi"])), Ok(Shimmed::Version));
        assert_eq!(shimmed(&["p", "pi", "--version"]), ["pi", "--version"]);
    }

    #[test]
    fn the_shim_refuses_an_argument_that_is_not_utf8() {
        let raw =
            vec![OsString::from("p"), OsString::from("pi"), OsString::from_vec(b"\xff".into())];
        assert_eq!(shim(raw), Err("argument 2 is not valid UTF-8: \"\\xFF\"".to_string()));
    }

    /// The test program.
    #[derive(FromArgs, Debug, PartialEq)]
    struct Args {
        /// a count
        #[argh(option, from_str_fn(parse_count), default = "1")]
        terms: u64,
    }

    #[test]
    fn parse_turns_early_exits_into_text_or_one_usage_line() {
        let parse = |args: &[&str]| parse::<Args>("prog", os(args));
        assert_eq!(parse(&["prog", "--terms=1e3"]).unwrap(), Parsed::Run(Args { terms: 1000 }));
        assert_eq!(
            parse(&["prog", "-V"]).unwrap(),
            Parsed::Print(format!("prog {}\n", env!("CARGO_PKG_VERSION")))
        );
        let Parsed::Print(help) = parse(&["prog", "-h"]).unwrap() else { panic!("no help") };
        assert!(help.starts_with("Usage: prog") && help.contains("a count"), "{help}");
        for (args, line) in [
            (&["prog", "--terms", "x"][..], "'x' is not a whole number"),
            (&["prog", "--bogus"], "Unrecognized argument: --bogus"),
        ] {
            let Err(Failure::Usage(msg)) = parse(args) else { panic!("{args:?}: not usage") };
            assert!(msg.contains(line) && msg.ends_with(" (see prog --help)"), "{msg}");
            assert_eq!(msg.lines().count(), 1, "{msg}");
        }
        let raw = vec![OsString::from("prog"), OsString::from_vec(b"--terms=\xff".into())];
        let Err(failure) = super::parse::<Args>("prog", raw) else { panic!("non-UTF-8 accepted") };
        assert_eq!(failure.exit_code(), USAGE);
        assert_eq!(
            failure.message().as_deref(),
            Some("argument 1 is not valid UTF-8: \"--terms=\\xFF\" (see prog --help)")
        );
    }

    #[test]
    fn exit_codes_follow_the_failure() {
        let io = |kind| std::io::Error::from(kind);
        assert_eq!(Failure::Usage("x".into()).exit_code(), 2);
        assert_eq!(Failure::Output(io(std::io::ErrorKind::BrokenPipe)).exit_code(), 0);
        assert_eq!(Failure::Output(io(std::io::ErrorKind::BrokenPipe)).message(), None);
        assert_eq!(Failure::Output(io(std::io::ErrorKind::Other)).exit_code(), 1);
        assert_eq!(Failure::Signals(io(std::io::ErrorKind::Other)).exit_code(), 1);
        assert_eq!(Failure::Run(Error::Interrupted { signal: 2 }).exit_code(), 130);
        assert_eq!(Failure::Run(Error::Interrupted { signal: 15 }).exit_code(), 143);
        let state = |e| Failure::Run(Error::State(e));
        assert_eq!(state(StateError::TooManyChunks { terms: 1, chunk: 1 }).exit_code(), 2);
        assert_eq!(state(StateError::EmptyDir).exit_code(), 1);
        let died = Error::WorkerDied {
            worker: 0,
            pid: None,
            exitcode: pifork::ExitCode::Exited(3),
            panic: None,
        };
        assert_eq!(Failure::Run(died).exit_code(), 1);
    }

    #[test]
    fn counts_are_checked_against_their_limits() {
        assert!(
            matches!(check_terms(0), Err(Failure::Usage(m)) if m == "--terms must be at least 1")
        );
        assert!(check_terms(super::super::pi::MAX_TERMS).is_ok());
        assert!(check_terms(super::super::pi::MAX_TERMS + 1).is_err());
        assert_eq!(check_workers("--w", 4096).unwrap(), 4096);
        assert!(
            matches!(check_workers("--w", 0), Err(Failure::Usage(m)) if m == "--w must be at least 1")
        );
        assert!(matches!(
            check_workers("--w", 4097),
            Err(Failure::Usage(m)) if m == "--w 4097 is too many (at most 4096)"
        ));
    }
}
