//! The kernel's inner loop: sums of the Leibniz series in groups of 16 terms, without a
//! division, in one formulation that every CPU evaluates with the same IEEE operations in the
//! same order, so the bits agree on x86_64 and aarch64 and on every dispatch path.
//!
//! A group is 16 consecutive terms whose (odd) denominators are centred on an even `c`:
//! 1/(c-15) - 1/(c-13) + ... - 1/(c+15). Expanding each term in powers of 1/c, the even
//! powers cancel and the sum is `w*(16 + 4048*w + 1008016*w^2 + ...)` with `w = 1/c^2`: all
//! coefficients positive (no cancellation), each about 225 times the one before. The kernel
//! only takes groups with `c > 2^16`, where the first three coefficients leave a relative
//! error below 2e-22. `w` comes without a divider: a seed from the bits of `q = c*c`
//! (relative error below 0.051), two cubic Newton steps (below 1e-11), and a last quadratic
//! step with fused multiply-adds, which leaves `w` within about one ulp.
//!
//! Each path expands the same macros (`group_quotient!`, `block_loop!`) over its own vector
//! type: AVX-512F (8 lanes), AVX2+FMA (4), NEON (2) or plain `f64` (the baseline; without the
//! `fma` target feature `f64::mul_add` is the C library's exactly rounded `fma`, slow but
//! identical). Sixteen logical lanes, one group each, are summed in the same order by every
//! path. Every operation is an IEEE one, correctly rounded (add, multiply, fused
//! multiply-add, an integer subtraction of bits), and Rust neither fuses nor reorders
//! floating-point operations, so the macro's order is the order every path executes.

use std::fmt;
use std::sync::OnceLock;

mod portable;

#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)] // NEON intrinsics
mod aarch64;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // AVX2 and AVX-512 intrinsics, detected at run time
mod x86;

#[cfg(target_arch = "aarch64")]
use aarch64 as isa;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
use portable as isa;
#[cfg(target_arch = "x86_64")]
use x86 as isa;

/// Version of the kernel's arithmetic: partial sums of different versions may differ in the
/// last place, so the service's state file records it.
pub const VERSION: u32 = 2;

/// Logical lanes: groups summed side by side, each into its own accumulator.
pub const LANES: usize = 16;

/// Terms per group.
pub const GROUP_TERMS: u64 = 16;

/// Distance between the centres of two groups a lane takes one after the other.
pub const BLOCK_SPAN: f64 = (2 * GROUP_TERMS * LANES as u64) as f64;

/// Operations per group (per lane): 2 adds, 2 multiplies, 10 fused multiply-adds and one
/// integer subtraction (the reciprocal seed).
pub const OPS_PER_GROUP: u32 = 15;

/// The smallest group centre the kernel is accurate for (see the module's notes).
pub const MIN_CENTRE: f64 = 65536.0;

/// The environment variable that forces a path.
pub const ENV: &str = "PIFORK_KERNEL";

/// The group's sum in powers of `w = 1/c^2`: 16 w + 4048 w^2 + 1008016 w^3 (+ 247125328 w^4 +
/// ..., negligible for c > 2^16).
const A: [f64; 3] = [16.0, 4048.0, 1008016.0];

/// Subtracting a positive double's bits from this gives its reciprocal within 5.06%.
const SEED_MAGIC: u64 = 0x7FDE_6238_5020_0000;

/// The sum of one group of terms from the lane operations in scope (`splat`, `add`, `mul`,
/// `fma(a, b, c) = a*b + c`, `fnma(a, b, c) = c - a*b`, `seed`): the one formulation every
/// path expands.
macro_rules! group_quotient {
    ($c:expr) => {{
        let c = $c;
        let q = mul(c, c);
        let mut y = seed(q);
        for _ in 0..2 {
            let e = fnma(q, y, splat(1.0));
            let t = fma(e, e, e);
            y = fma(y, t, y);
        }
        let e = fnma(q, y, splat(1.0));
        let w = fma(y, e, y);
        let p = fma(splat($crate::kernel::A[2]), w, splat($crate::kernel::A[1]));
        let p = fma(p, w, splat($crate::kernel::A[0]));
        mul(p, w)
    }};
}

/// The block loop over the lane operations in scope (plus `W`, lanes per vector, `V`, the
/// vector type, `load` and `store`): lane `l` starts from `acc[l]` and adds the groups
/// centred on `top + 32*l`, `top + 32*l - BLOCK_SPAN`, ... (`blocks` of them), in that order.
macro_rules! block_loop {
    ($acc:expr, $top:expr, $blocks:expr) => {{
        const N: usize = $crate::kernel::LANES / W;
        let (acc_in, top, blocks): ([f64; $crate::kernel::LANES], f64, u64) = ($acc, $top, $blocks);
        let mut centre = [splat(0.0); N];
        let mut acc = [splat(0.0); N];
        for i in 0..N {
            let mut lanes = [0.0f64; W];
            for (j, lane) in lanes.iter_mut().enumerate() {
                *lane = top + (2 * $crate::kernel::GROUP_TERMS * (i * W + j) as u64) as f64;
            }
            centre[i] = load(lanes);
            acc[i] = load(std::array::from_fn(|j| acc_in[i * W + j]));
        }
        let step = splat($crate::kernel::BLOCK_SPAN);
        for _ in 0..blocks {
            for i in 0..N {
                acc[i] = add(acc[i], $crate::kernel::group_quotient!(centre[i]));
                centre[i] = sub(centre[i], step);
            }
        }
        let mut out = [0.0f64; $crate::kernel::LANES];
        for i in 0..N {
            out[i * W..(i + 1) * W].copy_from_slice(&store(acc[i]));
        }
        out
    }};
}

/// A tight loop with the kernel's operation mix per group (2 adds, 2 multiplies, 10 FMAs,
/// one integer subtraction) on 15 independent accumulators, one operation each per
/// iteration: the throughput floor of the core's pipes for that mix. Runs `iterations`
/// iterations (each is one group on every lane of one vector) and returns a value that
/// depends on all of them.
macro_rules! mix_loop {
    ($iterations:expr) => {{
        let iterations: u64 = $iterations;
        let (half, quarter, grow) = (splat(0.5), splat(0.25), splat(1.0 + f64::EPSILON));
        // Distinct starting values: identical chains could be merged by the compiler.
        let mut a: [V; 15] = std::array::from_fn(|i| splat(1.0 + i as f64 / 16.0));
        for _ in 0..iterations {
            a[0] = seed(a[0]);
            a[1] = add(a[1], half);
            a[2] = add(a[2], quarter);
            a[3] = mul(a[3], grow);
            a[4] = mul(a[4], grow);
            for x in a[5..].iter_mut() {
                *x = fma(*x, half, half);
            }
        }
        let mut total = 0.0;
        for x in a {
            total += store(x).iter().sum::<f64>();
        }
        total
    }};
}

pub(crate) use {block_loop, group_quotient, mix_loop};

/// A kernel path: an instruction set the group sums are computed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Plain `f64` arithmetic, one lane at a time (any CPU; FMA through the C library where
    /// the CPU lacks it).
    Baseline,
    /// x86_64 AVX2 with FMA, 4 lanes.
    Avx2,
    /// x86_64 AVX-512F, 8 lanes.
    Avx512,
    /// aarch64 NEON (Advanced SIMD), 2 lanes.
    Neon,
}

impl Path {
    /// Every path, in order of preference (best last).
    pub const ALL: [Path; 4] = [Path::Baseline, Path::Avx2, Path::Avx512, Path::Neon];

    /// The path's name, as `PIFORK_KERNEL` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Baseline => "baseline",
            Path::Avx2 => "avx2",
            Path::Avx512 => "avx512",
            Path::Neon => "neon",
        }
    }

    /// f64 lanes per vector instruction on this path.
    pub fn width(self) -> usize {
        match self {
            Path::Baseline => 1,
            Path::Avx2 => 4,
            Path::Avx512 => 8,
            Path::Neon => 2,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a kernel path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// `PIFORK_KERNEL` names no path.
    Unknown(String),
    /// This CPU (or architecture) lacks the path's instructions.
    Unsupported(Path),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = Path::ALL.map(Path::as_str).join(", ");
        match self {
            KernelError::Unknown(name) => {
                write!(f, "{ENV}={name:?} is not a kernel path (one of: {names})")
            }
            KernelError::Unsupported(path) => write!(
                f,
                "{ENV}={path}: this CPU lacks it (available here: {})",
                supported().iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl std::error::Error for KernelError {}

impl std::str::FromStr for Path {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<Path, KernelError> {
        Path::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| KernelError::Unknown(s.to_string()))
    }
}

/// Panics unless this CPU runs `path`: a vector path may only run where it was detected.
fn require(path: Path) {
    if let Err(e) = check(path) {
        panic!("{e}");
    }
}

/// The paths this CPU runs, best last.
pub fn supported() -> Vec<Path> {
    isa::supported()
}

/// The best path this CPU runs.
pub fn best() -> Path {
    *supported().last().unwrap_or(&Path::Baseline)
}

/// `path` if this CPU runs it, else [`KernelError::Unsupported`].
pub fn check(path: Path) -> Result<Path, KernelError> {
    if supported().contains(&path) { Ok(path) } else { Err(KernelError::Unsupported(path)) }
}

/// The path in use: `PIFORK_KERNEL` if set (checked against the CPU), else the best one.
/// Decided once per process.
pub fn selected() -> Result<Path, KernelError> {
    static CHOICE: OnceLock<Result<Path, KernelError>> = OnceLock::new();
    CHOICE
        .get_or_init(|| match std::env::var(ENV) {
            Ok(name) if !name.is_empty() => name.parse().and_then(check),
            _ => Ok(best()),
        })
        .clone()
}

/// The lane sums of `blocks` blocks on `path`, added to `acc`: lane `l` adds the groups
/// centred on `top + 32*l - k*BLOCK_SPAN` for k = 0, 1, ... (smallest terms first).
///
/// # Panics
/// If this CPU lacks `path`.
pub fn block_sums(path: Path, acc: [f64; LANES], top: f64, blocks: u64) -> [f64; LANES] {
    isa::sums(path, acc, top, blocks)
}

/// The sum of one group (16 terms centred on `centre`) with plain `f64` operations: the same
/// bits as any lane of [`block_sums`].
pub fn group(centre: f64) -> f64 {
    portable::group(centre)
}

/// The floor loop of the kernel's operation mix on `path`, `iterations` times (each is one
/// group's operations on every lane of one vector).
///
/// # Panics
/// If this CPU lacks `path`.
pub fn mix(path: Path, iterations: u64) -> f64 {
    isa::mix_on(path, iterations)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The group's 16 terms, summed in pairs from the smallest, with exact divisions.
    fn by_division(centre: f64) -> f64 {
        (0..8)
            .rev()
            .map(|j| {
                let x = centre - 15.0 + 4.0 * j as f64;
                2.0 / (x * (x + 2.0))
            })
            .sum()
    }

    #[test]
    fn coefficients_are_the_odd_moments() {
        // The coefficient of w^(k+1) is minus the sum over the group of (-1)^j o_j^(2k+1),
        // o_j = 2j - 15 the denominators' offsets from the centre.
        for (k, &a) in A.iter().enumerate() {
            let moment: i64 = (0..16)
                .map(|j: i64| (-1i64).pow(j as u32) * (2 * j - 15).pow(2 * k as u32 + 1))
                .sum();
            assert_eq!(a, -moment as f64);
        }
    }

    #[test]
    fn seed_is_within_its_bound() {
        for k in 0..10_000 {
            let x = (1.0 + k as f64 / 10_000.0) * 2f64.powi(k % 700 - 350);
            let y = f64::from_bits(SEED_MAGIC - x.to_bits());
            assert!((1.0 - x * y).abs() < 0.0506, "{x}");
        }
    }

    #[test]
    fn groups_match_exact_divisions() {
        for centre in [MIN_CENTRE + 16.0, 1e6, 1e9, 2e10 + 16.0, 2f64.powi(51)] {
            let (got, want) = (group(centre), by_division(centre));
            assert!(((got - want) / want).abs() < 4.0 * f64::EPSILON, "{centre}: {got} vs {want}");
        }
    }

    #[test]
    fn every_supported_path_gives_the_same_bits() {
        let acc: [f64; LANES] = std::array::from_fn(|l| l as f64 * 1e-9);
        let want = block_sums(Path::Baseline, acc, 1e6 + 16.0, 37);
        for path in Path::ALL {
            if check(path).is_err() {
                println!("kernel path {path}: not supported by this CPU, skipped");
                continue;
            }
            let got = block_sums(path, acc, 1e6 + 16.0, 37);
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{path}");
        }
    }

    #[test]
    fn lanes_equal_the_scalar_group() {
        let top = 123_456_784.0;
        let sums = block_sums(best(), [0.0; LANES], top, 1);
        for (l, s) in sums.iter().enumerate() {
            assert_eq!(s.to_bits(), group(top + 32.0 * l as f64).to_bits());
        }
    }

    #[test]
    fn paths_parse_and_refuse() {
        assert_eq!("avx2".parse::<Path>(), Ok(Path::Avx2));
        let unknown = "sse9".parse::<Path>().unwrap_err().to_string();
        assert!(unknown.contains("\"sse9\" is not a kernel path"), "{unknown}");
        assert!(check(Path::Baseline).is_ok());
    }
}
