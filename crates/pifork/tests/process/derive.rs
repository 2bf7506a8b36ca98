//! Types of the program's own (`#[derive(Message)]`) as a child's arguments, its result and
//! the messages of a connection, under every start method.

use std::os::fd::AsRawFd;

use pifork::{Connection, Message, Process, StartMethod, pipe};

const DESCRIBE: &str = "derive.describe";
const ANSWER: &str = "derive.answer";

/// A request with fields of several built-in types, and a generic one of the program's own.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct Job<T> {
    pub id: u64,
    pub label: String,
    pub inputs: Vec<T>,
    pub limit: Option<u32>,
}

/// What a child makes of a job: every kind of variant.
#[derive(Message, Debug, Clone, PartialEq)]
pub enum Outcome {
    Skipped,
    Sum(i64, String),
    Clipped { id: u64, kept: Vec<Point> },
}

#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub struct Point(i64, i64);

fn describe(job: Job<Point>) -> Outcome {
    match job.limit {
        Some(0) => Outcome::Skipped,
        Some(n) => {
            Outcome::Clipped { id: job.id, kept: job.inputs.into_iter().take(n as usize).collect() }
        }
        None => Outcome::Sum(job.inputs.iter().map(|p| p.0 + p.1).sum(), job.label),
    }
}

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(DESCRIBE, describe);
    // Answers every job that comes over the connection until the parent closes its end.
    pifork::register(ANSWER, |fd: i32| {
        let conn = Connection::<Outcome>::from_inherited(fd).unwrap();
        let mut answered = 0u32;
        while let Some(outcome) = conn.recv().unwrap() {
            let reply = match outcome {
                Outcome::Sum(n, label) => Outcome::Sum(-n, label.to_uppercase()),
                Outcome::Clipped { id, mut kept } => {
                    kept.reverse();
                    Outcome::Clipped { id: id + 1, kept }
                }
                Outcome::Skipped => Outcome::Skipped,
            };
            conn.send(&reply).unwrap();
            answered += 1;
        }
        answered
    });
}

pub const TESTS: &[crate::common::Test] = &[
    crate::common::Test::EachMethod(
        "a_derived_type_goes_to_the_child_and_back",
        a_derived_type_goes_to_the_child_and_back,
    ),
    crate::common::Test::EachMethod(
        "derived_messages_go_both_ways_on_a_connection",
        derived_messages_go_both_ways_on_a_connection,
    ),
];

fn jobs() -> Vec<Job<Point>> {
    let inputs = vec![Point(1, 2), Point(-10, 4), Point(i64::MAX / 2, 0)];
    vec![
        Job { id: 1, label: "sum".into(), inputs: inputs.clone(), limit: None },
        Job { id: 2, label: "none".into(), inputs: inputs.clone(), limit: Some(0) },
        Job { id: 3, label: "two".into(), inputs, limit: Some(2) },
    ]
}

fn a_derived_type_goes_to_the_child_and_back(m: StartMethod) {
    for job in jobs() {
        let want = describe(job.clone());
        let mut p = if m == StartMethod::Fork {
            Process::with_args(describe, job).start_method(m)
        } else {
            Process::<Outcome>::entry(DESCRIBE, &job).start_method(m)
        };
        p.start().unwrap();
        assert_eq!(p.result().unwrap(), want);
    }
}

fn derived_messages_go_both_ways_on_a_connection(m: StartMethod) {
    let (conn, child_end) = pipe::<Outcome>().unwrap();
    let fd = child_end.as_raw_fd();
    let mut p = Process::<u32>::entry(ANSWER, &fd).start_method(m).inherit_fds([fd]);
    p.start().unwrap();
    drop(child_end);
    conn.send(&Outcome::Sum(5, "abc".into())).unwrap();
    assert_eq!(conn.recv().unwrap(), Some(Outcome::Sum(-5, "ABC".into())));
    let kept: Vec<Point> = (0..2000).map(|i| Point(i, -i)).collect();
    conn.send(&Outcome::Clipped { id: 9, kept: kept.clone() }).unwrap();
    let reversed: Vec<Point> = kept.into_iter().rev().collect();
    assert_eq!(conn.recv().unwrap(), Some(Outcome::Clipped { id: 10, kept: reversed }));
    conn.send(&Outcome::Skipped).unwrap();
    assert_eq!(conn.recv().unwrap(), Some(Outcome::Skipped));
    drop(conn);
    assert_eq!(p.result().unwrap(), 3);
}
