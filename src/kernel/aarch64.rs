//! aarch64: the NEON path (base ARMv8 Advanced SIMD, which every aarch64 CPU has, the
//! Raspberry Pi 4's Cortex-A72 included), and the baseline.

use super::{LANES, Path, portable};

/// The paths this CPU runs, best last.
pub(super) fn supported() -> Vec<Path> {
    vec![Path::Baseline, Path::Neon]
}

/// The block loop on `path`.
pub(super) fn sums(path: Path, acc: [f64; LANES], top: f64, blocks: u64) -> [f64; LANES] {
    super::require(path);
    match path {
        // SAFETY: NEON is part of the aarch64 targets' baseline: every CPU this binary runs
        // on has it.
        Path::Neon => unsafe { neon::block_sums(acc, top, blocks) },
        _ => portable::block_sums(acc, top, blocks),
    }
}

/// The operation-mix floor loop on `path`.
pub(super) fn mix_on(path: Path, iterations: u64) -> f64 {
    super::require(path);
    match path {
        // SAFETY: NEON is part of the aarch64 baseline.
        Path::Neon => unsafe { neon::mix(iterations) },
        _ => portable::mix(iterations),
    }
}

/// 2 lanes of 128 bits.
mod neon {
    use std::arch::aarch64::*;

    use super::super::{LANES, SEED_MAGIC};

    type V = float64x2_t;
    const W: usize = 2;

    #[inline]
    #[target_feature(enable = "neon")]
    fn splat(x: f64) -> V {
        vdupq_n_f64(x)
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn add(a: V, b: V) -> V {
        vaddq_f64(a, b)
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn sub(a: V, b: V) -> V {
        vsubq_f64(a, b)
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn mul(a: V, b: V) -> V {
        vmulq_f64(a, b)
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn fma(a: V, b: V, c: V) -> V {
        vfmaq_f64(c, a, b)
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn fnma(a: V, b: V, c: V) -> V {
        vfmsq_f64(c, a, b)
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn seed(d: V) -> V {
        vreinterpretq_f64_u64(vsubq_u64(vdupq_n_u64(SEED_MAGIC), vreinterpretq_u64_f64(d)))
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn load(l: [f64; W]) -> V {
        vsetq_lane_f64::<1>(l[1], vdupq_n_f64(l[0]))
    }

    #[inline]
    #[target_feature(enable = "neon")]
    fn store(v: V) -> [f64; W] {
        [vgetq_lane_f64::<0>(v), vgetq_lane_f64::<1>(v)]
    }

    /// The block loop in 128-bit vectors.
    #[inline(never)]
    #[target_feature(enable = "neon")]
    pub(super) fn block_sums(acc: [f64; LANES], top: f64, blocks: u64) -> [f64; LANES] {
        super::super::block_loop!(acc, top, blocks)
    }

    /// The operation-mix floor loop in 128-bit vectors.
    #[inline(never)]
    #[target_feature(enable = "neon")]
    pub(super) fn mix(iterations: u64) -> f64 {
        super::super::mix_loop!(iterations)
    }
}
