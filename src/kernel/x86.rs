//! x86_64: AVX-512F and AVX2+FMA vector paths, chosen at run time, and the baseline.

use super::{LANES, Path, portable};

/// The paths this CPU runs, best last.
pub(super) fn supported() -> Vec<Path> {
    let mut paths = vec![Path::Baseline];
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        paths.push(Path::Avx2);
    }
    if std::is_x86_feature_detected!("avx512f") {
        paths.push(Path::Avx512);
    }
    paths
}

/// The block loop on `path`.
pub(super) fn sums(path: Path, acc: [f64; LANES], top: f64, blocks: u64) -> [f64; LANES] {
    super::require(path);
    match path {
        // SAFETY: `require` checked that this CPU has AVX2 and FMA.
        Path::Avx2 => unsafe { avx2::block_sums(acc, top, blocks) },
        // SAFETY: `require` checked that this CPU has AVX-512F.
        Path::Avx512 => unsafe { avx512::block_sums(acc, top, blocks) },
        _ => portable::block_sums(acc, top, blocks),
    }
}

/// The operation-mix floor loop on `path`.
pub(super) fn mix_on(path: Path, iterations: u64) -> f64 {
    super::require(path);
    match path {
        // SAFETY: `require` checked that this CPU has AVX2 and FMA.
        Path::Avx2 => unsafe { avx2::mix(iterations) },
        // SAFETY: `require` checked that this CPU has AVX-512F.
        Path::Avx512 => unsafe { avx512::mix(iterations) },
        _ => portable::mix(iterations),
    }
}

/// 8 lanes of 512 bits.
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::{LANES, SEED_MAGIC};

    type V = __m512d;
    const W: usize = 8;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(x: f64) -> V {
        _mm512_set1_pd(x)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: V, b: V) -> V {
        _mm512_add_pd(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sub(a: V, b: V) -> V {
        _mm512_sub_pd(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mul(a: V, b: V) -> V {
        _mm512_mul_pd(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fma(a: V, b: V, c: V) -> V {
        _mm512_fmadd_pd(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fnma(a: V, b: V, c: V) -> V {
        _mm512_fnmadd_pd(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn seed(d: V) -> V {
        let bits = _mm512_castpd_si512(d);
        _mm512_castsi512_pd(_mm512_sub_epi64(_mm512_set1_epi64(SEED_MAGIC as i64), bits))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(l: [f64; W]) -> V {
        _mm512_setr_pd(l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7])
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store(v: V) -> [f64; W] {
        let mut out = [0.0; W];
        // SAFETY: `out` holds W = 8 f64s, the 64 bytes an unaligned 512-bit store writes.
        unsafe { _mm512_storeu_pd(out.as_mut_ptr(), v) };
        out
    }

    /// The block loop in 512-bit vectors.
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    pub(super) fn block_sums(acc: [f64; LANES], top: f64, blocks: u64) -> [f64; LANES] {
        super::super::block_loop!(acc, top, blocks)
    }

    /// The operation-mix floor loop in 512-bit vectors.
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    pub(super) fn mix(iterations: u64) -> f64 {
        super::super::mix_loop!(iterations)
    }
}

/// 4 lanes of 256 bits.
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::{LANES, SEED_MAGIC};

    type V = __m256d;
    const W: usize = 4;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn splat(x: f64) -> V {
        _mm256_set1_pd(x)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn add(a: V, b: V) -> V {
        _mm256_add_pd(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sub(a: V, b: V) -> V {
        _mm256_sub_pd(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn mul(a: V, b: V) -> V {
        _mm256_mul_pd(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fma(a: V, b: V, c: V) -> V {
        _mm256_fmadd_pd(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fnma(a: V, b: V, c: V) -> V {
        _mm256_fnmadd_pd(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn seed(d: V) -> V {
        let bits = _mm256_castpd_si256(d);
        _mm256_castsi256_pd(_mm256_sub_epi64(_mm256_set1_epi64x(SEED_MAGIC as i64), bits))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load(l: [f64; W]) -> V {
        _mm256_setr_pd(l[0], l[1], l[2], l[3])
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn store(v: V) -> [f64; W] {
        let mut out = [0.0; W];
        // SAFETY: `out` holds W = 4 f64s, the 32 bytes an unaligned 256-bit store writes.
        unsafe { _mm256_storeu_pd(out.as_mut_ptr(), v) };
        out
    }

    /// The block loop in 256-bit vectors.
    #[inline(never)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn block_sums(acc: [f64; LANES], top: f64, blocks: u64) -> [f64; LANES] {
        super::super::block_loop!(acc, top, blocks)
    }

    /// The operation-mix floor loop in 256-bit vectors.
    #[inline(never)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn mix(iterations: u64) -> f64 {
        super::super::mix_loop!(iterations)
    }
}
