//! The README's library example, kept compiling.

use pifork::{Process, Supervisor, wait_first};
use std::time::Duration;

fn main() -> pifork::Result<()> {
    // A target with arguments; the return value comes back to the parent.
    let leibniz = |(m, n): (u64, u64)| -> f64 {
        (m..=n).map(|k| if k % 2 == 1 { 1.0 } else { -1.0 } / (2 * k - 1) as f64).sum()
    };
    let mut p = Process::with_args(leibniz, (1u64, 1_000_000u64)).name("summer").cpus([0]);
    p.start()?;
    println!("pi ~ {}", 4.0 * p.result()?); // joins, then decodes the f64

    // Wait for the first of several processes, then stop the others.
    let mut racers: Vec<Process> = [300u64, 10, 200]
        .into_iter()
        .map(|ms| Process::new(move || std::thread::sleep(Duration::from_millis(ms))).daemon(true))
        .collect();
    for r in &mut racers {
        r.start()?;
    }
    let first = wait_first(&racers, None)?.expect("no timeout");
    println!("first: {}", racers[first].get_name());
    for r in &mut racers {
        r.terminate()?;
        r.join()?;
        let code = r.exitcode()?.expect("joined");
        println!("{} exitcode {code}", r.get_name()); // 0 or -SIGTERM
    }

    // A scope that terminates daemonic children and joins the others when it ends.
    let mut sup: Supervisor<u64> = Supervisor::new();
    sup.start(Process::new(|| 42u64))?;
    Ok(())
}
