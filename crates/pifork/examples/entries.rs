//! The README's entry-point example, kept compiling.

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> pifork::Result<()> {
    pifork::register("square", square);
    pifork::main_guard(); // a spawned child runs its entry here and exits
    let mut p: pifork::Process<u64> =
        pifork::Process::entry("square", &12u64).start_method(pifork::StartMethod::Spawn);
    p.start()?;
    assert_eq!(p.result()?, 144);
    Ok(())
}
