//! The README's connection example, kept compiling.

use pifork::{Process, pipe, wait};
use std::os::fd::{AsFd, AsRawFd};

fn main() -> pifork::Result<()> {
    // CPython's Pipe(): two ends, each sends and receives.
    let (parent, child) = pipe::<String>()?;
    let fd = child.as_raw_fd();
    let mut p = Process::new(move || {
        while let Some(line) = child.recv().unwrap() {
            child.send(&line.to_uppercase()).unwrap();
        }
    })
    .inherit_fds([fd]); // the child keeps its end
    p.start()?;
    parent.send(&"hello".to_string())?;
    // A connection is waited on beside process sentinels: here the answer comes first.
    assert_eq!(wait(&[parent.as_fd(), p.sentinel()?], None)?, [0]);
    println!("{}", parent.recv()?.unwrap_or_default()); // HELLO
    drop(parent); // the child's recv() sees the end, and its target returns
    p.join()?;
    Ok(())
}
