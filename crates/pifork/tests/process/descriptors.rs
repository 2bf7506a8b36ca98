//! Descriptors a child gets: only its own pipe ends among pifork's (fork), the ones listed with
//! `inherit_fds` under the same numbers (every method), each claimable once with
//! `from_inherited` / `take_inherited`, and nothing that was not listed.

use std::os::fd::AsRawFd;

use pifork::{
    Backend, Error, ExitCode, Process, Receiver, Sender, StartMethod, channel, forkserver,
};

use crate::common::{Test, open_fds, sleep_ms};

const ECHO: &str = "descriptors.echo";
const CLAIM: &str = "descriptors.claim";
const DROP_END: &str = "descriptors.drop_end";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(ECHO, |(rx, tx): (i32, i32)| {
        let rx = Receiver::<u64>::from_inherited(rx).unwrap();
        let tx = Sender::<u64>::from_inherited(tx).unwrap();
        while let Some(x) = rx.recv().unwrap() {
            tx.send(&(x + 1)).unwrap();
        }
    });
    pifork::register(CLAIM, claim);
    // Sends one number on its inherited end, closes it, then lives on for `ms` milliseconds.
    pifork::register(DROP_END, |(fd, ms): (i32, u64)| {
        let tx = Sender::<u64>::from_inherited(fd).unwrap();
        tx.send(&1).unwrap();
        drop(tx);
        sleep_ms(ms);
    });
}

pub const TESTS: &[Test] = &[
    Test::Once("child_holds_only_its_own_pipe_ends", child_holds_only_its_own_pipe_ends),
    Test::Once("inherited_channel_reaches_the_child", inherited_channel_reaches_the_child),
    Test::Once(
        "child_holds_none_of_thousands_of_descriptors",
        child_holds_none_of_thousands_of_descriptors,
    ),
    Test::EachMethod(
        "inherited_descriptors_keep_their_numbers",
        inherited_descriptors_keep_their_numbers,
    ),
    Test::EachMethod(
        "inherited_descriptors_are_claimed_once",
        inherited_descriptors_are_claimed_once,
    ),
    Test::EachMethod(
        "an_inherited_end_closes_when_the_child_drops_it",
        an_inherited_end_closes_when_the_child_drops_it,
    ),
];

fn child_holds_only_its_own_pipe_ends() {
    // No pifork descriptor may be open at the baseline: they are not inherited, by design.
    forkserver::stop();
    let baseline = open_fds();
    // Some pifork descriptors the parent holds while the probe starts.
    let mut other = Process::new(|| sleep_ms(60_000)).daemon(true);
    other.start().unwrap();
    let (_tx, _rx) = channel::<u8>().unwrap();
    let mut probe = Process::new(open_fds);
    probe.start().unwrap();
    let child_fds = probe.result().unwrap();
    let extra: Vec<i32> = child_fds.iter().copied().filter(|fd| !baseline.contains(fd)).collect();
    let own = match pifork::backend() {
        Backend::Pidfd => 1, // the result pipe's write end
        Backend::Pipe => 2,  // and the sentinel pipe's write end
    };
    assert_eq!(extra.len(), own, "child fds {child_fds:?}, baseline {baseline:?}");
    assert!(baseline.iter().all(|fd| child_fds.contains(fd)), "ordinary descriptors are inherited");
}

/// Beyond any fixed table size: 5,000 pifork descriptors open in the parent (2,500 channels),
/// none of them reaches a forked child.
fn child_holds_none_of_thousands_of_descriptors() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const CHANNELS: u64 = 2_500;
    forkserver::stop();
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let need = 2 * CHANNELS + 256;
    assert!(hard >= need, "RLIMIT_NOFILE's hard limit {hard} is below the {need} this test needs");
    setrlimit(Resource::RLIMIT_NOFILE, need.max(soft), hard).unwrap();
    let baseline = open_fds();
    let channels: Vec<_> = (0..CHANNELS).map(|_| channel::<u8>().unwrap()).collect();
    assert!(channels.iter().any(|(tx, _)| tx.as_raw_fd() > 4096));
    let mut probe = Process::new(open_fds);
    probe.start().unwrap();
    let child_fds = probe.result().unwrap();
    let extra: Vec<i32> = child_fds.iter().copied().filter(|fd| !baseline.contains(fd)).collect();
    let own = match pifork::backend() {
        Backend::Pidfd => 1,
        Backend::Pipe => 2,
    };
    assert_eq!(
        extra.len(),
        own,
        "the child holds {} descriptors besides its own",
        extra.len() - own
    );
    drop(channels);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
}

fn inherited_channel_reaches_the_child() {
    // A fork closure captures the channel ends it keeps.
    let (tx, rx) = channel::<(u64, f64)>().unwrap();
    let (back_tx, back_rx) = channel::<String>().unwrap();
    let keep = [rx.as_raw_fd(), back_tx.as_raw_fd()];
    let mut p = Process::new(move || {
        while let Some((k, x)) = rx.recv().unwrap() {
            back_tx.send(&format!("{k}:{x}")).unwrap();
        }
    })
    .inherit_fds(keep);
    p.start().unwrap();
    tx.send(&(1, 0.5)).unwrap();
    assert_eq!(back_rx.recv().unwrap().as_deref(), Some("1:0.5"));
    drop(tx);
    p.join().unwrap();
    assert_eq!(back_rx.recv().unwrap(), None, "the child's end closed when it exited");
}

fn inherited_descriptors_keep_their_numbers(m: StartMethod) {
    let (to_child, child_rx) = channel::<u64>().unwrap();
    let (child_tx, from_child) = channel::<u64>().unwrap();
    let keep = [child_rx.as_raw_fd(), child_tx.as_raw_fd()];
    let mut p = Process::<()>::entry(ECHO, &(keep[0], keep[1])).start_method(m).inherit_fds(keep);
    p.start().unwrap();
    drop((child_rx, child_tx));
    for x in [1u64, 41] {
        to_child.send(&x).unwrap();
        assert_eq!(from_child.recv().unwrap(), Some(x + 1));
    }
    drop(to_child);
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    assert_eq!(from_child.recv().unwrap(), None, "the child's end closed with it");
}

/// Claims its channel ends `rx` and `tx`, then each of them again and `unlisted`; echoes one
/// number over the claimed ends and returns the three refusals' messages.
fn claim((rx, tx, unlisted): (i32, i32, i32)) -> Vec<String> {
    let rx_end = Receiver::<u64>::from_inherited(rx).unwrap();
    let tx_end = Sender::<u64>::from_inherited(tx).unwrap();
    let refusals = vec![
        Receiver::<u64>::from_inherited(rx).map(drop),
        pifork::take_inherited(tx).map(drop),
        Sender::<u64>::from_inherited(unlisted).map(drop),
    ];
    let x = rx_end.recv().unwrap().unwrap();
    tx_end.send(&(x + 1)).unwrap();
    refusals.into_iter().map(|r| r.map_or_else(|e| e.to_string(), |()| "claimed".into())).collect()
}

fn inherited_descriptors_are_claimed_once(m: StartMethod) {
    let (to_child, child_rx) = channel::<u64>().unwrap();
    let (child_tx, from_child) = channel::<u64>().unwrap();
    let keep = [child_rx.as_raw_fd(), child_tx.as_raw_fd()];
    // Open in the child under every method, but not listed.
    let unlisted = std::io::stderr().as_raw_fd();
    let mut p = Process::<Vec<String>>::entry(CLAIM, &(keep[0], keep[1], unlisted))
        .start_method(m)
        .inherit_fds(keep);
    p.start().unwrap();
    drop((child_rx, child_tx));
    to_child.send(&5).unwrap();
    assert_eq!(from_child.recv().unwrap(), Some(6), "the claimed ends work");
    let expected: Vec<String> = [keep[0], keep[1], unlisted]
        .into_iter()
        .map(|fd| Error::NotInherited { fd }.to_string())
        .collect();
    assert_eq!(p.result().unwrap(), expected);
    // Nothing was handed down to this process: it can claim nothing.
    assert_eq!(
        pifork::take_inherited(to_child.as_raw_fd()).err(),
        Some(Error::NotInherited { fd: to_child.as_raw_fd() })
    );
}

fn an_inherited_end_closes_when_the_child_drops_it(m: StartMethod) {
    let (child_tx, from_child) = channel::<u64>().unwrap();
    let fd = child_tx.as_raw_fd();
    let mut p = Process::<()>::entry(DROP_END, &(fd, 60_000u64))
        .start_method(m)
        .daemon(true)
        .inherit_fds([fd]);
    p.start().unwrap();
    drop(child_tx);
    assert_eq!(from_child.recv().unwrap(), Some(1));
    // No other copy of the end in the child (nor anywhere else) keeps the pipe open.
    assert_eq!(from_child.recv().unwrap(), None);
    assert!(p.is_alive().unwrap(), "the end came before the child did");
    p.terminate().unwrap();
    p.join().unwrap();
}
