//! The baseline path: the kernel's formulation on plain `f64`, one lane at a time. `mul_add`
//! is exactly rounded everywhere (a fused instruction where the target has one, else the C
//! library's `fma`), so these bits are every path's bits.

use super::{LANES, Path, SEED_MAGIC};

/// One lane.
type V = f64;

/// Lanes per vector.
const W: usize = 1;

fn splat(x: f64) -> V {
    x
}

fn add(a: V, b: V) -> V {
    a + b
}

fn sub(a: V, b: V) -> V {
    a - b
}

fn mul(a: V, b: V) -> V {
    a * b
}

fn fma(a: V, b: V, c: V) -> V {
    a.mul_add(b, c)
}

fn fnma(a: V, b: V, c: V) -> V {
    (-a).mul_add(b, c)
}

fn seed(d: V) -> V {
    f64::from_bits(SEED_MAGIC.wrapping_sub(d.to_bits()))
}

fn load(lanes: [f64; W]) -> V {
    lanes[0]
}

fn store(v: V) -> [f64; W] {
    [v]
}

/// One group's sum.
pub(super) fn group(centre: f64) -> f64 {
    super::group_quotient!(centre)
}

/// The block loop on plain `f64`.
#[inline(never)]
pub(super) fn block_sums(acc: [f64; LANES], top: f64, blocks: u64) -> [f64; LANES] {
    super::block_loop!(acc, top, blocks)
}

/// The operation-mix floor loop on plain `f64`.
#[inline(never)]
pub(super) fn mix(iterations: u64) -> f64 {
    super::mix_loop!(iterations)
}

/// The paths on an architecture without a vector path of its own.
#[allow(dead_code)]
pub(super) fn supported() -> Vec<Path> {
    vec![Path::Baseline]
}

/// The block loop on `path`, where the baseline is the only one.
#[allow(dead_code)]
pub(super) fn sums(path: Path, acc: [f64; LANES], top: f64, blocks: u64) -> [f64; LANES] {
    super::require(path);
    block_sums(acc, top, blocks)
}

/// The operation-mix floor loop on `path`, where the baseline is the only one.
#[allow(dead_code)]
pub(super) fn mix_on(path: Path, iterations: u64) -> f64 {
    super::require(path);
    mix(iterations)
}
