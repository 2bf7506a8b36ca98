//! The fixed cut of the series 1..=N into chunks, independent of the worker count, and the
//! order-fixed combination of the chunks' partial sums: the same bits however the work is
//! shared out; and what a chunk's sum must be, from the series itself, to check a recorded one.

/// Number of chunks the series is cut into when it is long enough: divisible by 1, 2, 3, 4,
/// 6, 8, 12, 16 and 24, so common worker counts get equal shares.
pub const CHUNKS: u64 = 48;

/// The most chunks a service's job may have: its state holds a line per finished chunk and
/// its queue an entry per pending one, so this bounds both (to some 40 MB and 8 MB).
pub const MAX_CHUNKS: u64 = 1_000_000;

/// Smallest chunk, so that a chunk's work dwarfs the cost of handing it out.
pub const MIN_CHUNK: u64 = 1 << 20;

/// The fixed cut of terms 1..=n into chunks `(first, last)`, independent of the worker count.
pub fn chunk_plan(n: u64) -> Vec<(u64, u64)> {
    let size = n.div_ceil(CHUNKS).max(MIN_CHUNK).next_multiple_of(2);
    let mut chunks = Vec::new();
    let mut first = 1;
    while first <= n {
        let last = n.min(first + size - 1);
        chunks.push((first, last));
        first = last + 1;
    }
    chunks
}

/// Combines the chunks' partial sums, in chunk order, from the last (smallest) to the first,
/// with Neumaier compensation. The order is fixed, so the bits do not depend on who computed
/// which chunk.
pub fn combine(partials: &[f64]) -> f64 {
    let mut sum = 0.0f64;
    let mut compensation = 0.0f64;
    for &p in partials.iter().rev() {
        let t = sum + p;
        if sum.abs() >= p.abs() {
            compensation += (sum - t) + p;
        } else {
            compensation += (p - t) + sum;
        }
        sum = t;
    }
    sum + compensation
}

/// Terms below this are summed one by one by [`expected_sum`]; from here on the remainder
/// expansion is exact to far below `f64` precision (its first neglected term is 5.4/x^9).
const EXPANSION_FROM: u64 = 1000;

/// How far a computed chunk sum may lie from [`expected_sum`], relative to the sum plus its
/// first term (the terms that can cancel in the kernel). The kernel's rounding stays near
/// 2e-14 even over chunks of 4*10^11 terms (measured: 1.5e-14 at 4*10^10, 2.1e-14 at
/// 4*10^11, from term 2^33 on), so a 50-fold margin; a change of any bit above the lowest
/// 17 of the mantissa moves a sum further.
pub const SUM_TOLERANCE: f64 = 1e-12;

/// The sum of terms `first..=last` of (-1)^(k+1)/(2k-1), derived from the series itself and
/// not from the kernel: the terms below 1000 one by one, the rest as the difference of the
/// remainder expansion R(n) (pi = 4 S_n + (-1)^n R(n)) at `first - 1` and `last`, written so
/// that nothing cancels. Good to about 1e-15 relative; 0 when `first > last`.
///
/// # Panics
/// If `first == 0`.
pub fn expected_sum(first: u64, last: u64) -> f64 {
    assert!(first >= 1, "terms start at 1");
    let mut sum = 0.0;
    // The direct part, smallest term first.
    for k in (first..=last.min(EXPANSION_FROM - 1)).rev() {
        let term = 1.0 / (2 * k - 1) as f64;
        sum += if k % 2 == 1 { term } else { -term };
    }
    let first = first.max(EXPANSION_FROM);
    if first > last {
        return sum;
    }
    // 4 S(first, last) = (-1)^(first-1) R(first-1) - (-1)^last R(last), R(n) = f(n) below.
    let (x, y) = ((first - 1) as f64, last as f64);
    let (u, v) = (1.0 / x, 1.0 / y);
    // f(n) = 1/n - 1/(4n^3) + 5/(16n^5) - 61/(64n^7), as c_k for the powers 1, 3, 5, 7.
    const C: [f64; 4] = [1.0, -0.25, 5.0 / 16.0, -61.0 / 64.0];
    let sign = if (first - 1).is_multiple_of(2) { 1.0 } else { -1.0 };
    let four_s = if (last - first + 1).is_multiple_of(2) {
        // Same parity at both ends: f(x) - f(y), with u^k - v^k = (u - v)(u^(k-1) + ... +
        // v^(k-1)) and u - v = (y - x) u v, an exact integer times positive factors.
        let mut bracket = 0.0;
        for (i, c) in C.iter().enumerate() {
            let k = 2 * i + 1;
            let powers: f64 = (0..k).map(|j| u.powi((k - 1 - j) as i32) * v.powi(j as i32)).sum();
            bracket += c * powers;
        }
        sign * (last - first + 1) as f64 * u * v * bracket
    } else {
        // Opposite parity: f(x) + f(y), both positive.
        let f =
            |w: f64| C.iter().enumerate().map(|(i, c)| c * w.powi(2 * i as i32 + 1)).sum::<f64>();
        sign * (f(u) + f(v))
    };
    sum + four_s / 4.0
}

/// True if `sum` can be the kernel's sum of terms `first..=last`: finite and within
/// [`SUM_TOLERANCE`] of [`expected_sum`]. A NaN, an infinity, a zero (no chunk sums to zero)
/// or a sum with a changed sign, exponent or leading mantissa bit is not.
pub fn plausible_sum(first: u64, last: u64, sum: f64) -> bool {
    if first == 0 || first > last || !sum.is_finite() {
        return false;
    }
    let expected = expected_sum(first, last);
    let scale = expected.abs() + 1.0 / (2 * first - 1) as f64;
    sum.signum() == expected.signum() && (sum - expected).abs() <= SUM_TOLERANCE * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pi::{MAX_TERMS, partial_sum, remainder};
    use std::f64::consts::PI;

    #[test]
    fn plan_covers_every_term_once_independent_of_workers() {
        for n in [1u64, 2, 3, (1 << 20) - 1, 1 << 20, 100_000_000, 10_000_000_019] {
            let plan = chunk_plan(n);
            assert_eq!(plan[0].0, 1);
            assert_eq!(plan.last().unwrap().1, n);
            assert!(plan.windows(2).all(|w| w[0].1 + 1 == w[1].0));
            assert!(plan.len() as u64 <= CHUNKS);
        }
    }

    /// The largest relative distance of the kernel's sums from [`expected_sum`] over chunks
    /// at every scale: small and large first terms, 1 to 10^8 terms, both parities.
    fn worst_kernel_error() -> f64 {
        let mut worst = 0.0f64;
        let firsts = [1u64, 2, 3, 999, 1000, 1001, 123_457, 1 << 33, (1 << 46) + 1, MAX_TERMS / 2];
        let lengths = [1u64, 2, 3, 17, 1000, 1001, 1 << 20, 100_000_001];
        for &first in &firsts {
            for &len in &lengths {
                let last = (first + len - 1).min(MAX_TERMS);
                let sum = partial_sum(first, last);
                let expected = expected_sum(first, last);
                let scale = expected.abs() + 1.0 / (2 * first - 1) as f64;
                worst = worst.max((sum - expected).abs() / scale);
                assert!(plausible_sum(first, last, sum), "{first}..={last}: {sum} vs {expected}");
            }
        }
        worst
    }

    #[test]
    fn the_expected_sum_agrees_with_the_kernel_and_the_series() {
        let worst = worst_kernel_error();
        eprintln!("largest relative distance of a kernel sum from the expected: {worst:.3e}");
        assert!(worst < SUM_TOLERANCE / 20.0, "{worst:e}");
        // pi itself, from the expansion across the direct part.
        assert!((4.0 * expected_sum(1, 1 << 40) - (PI - remainder(1 << 40))).abs() < 1e-15);
        assert_eq!(expected_sum(1, 1), 1.0);
        assert_eq!(expected_sum(5, 4), 0.0);
    }

    #[test]
    fn implausible_sums_are_refused() {
        let (first, last) = (4_000_000_001u64, 8_000_000_000u64);
        let sum = partial_sum(first, last);
        assert!(plausible_sum(first, last, sum));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, -sum, 2.0 * sum] {
            assert!(!plausible_sum(first, last, bad), "{bad}");
        }
        // Every bit of the sign, the exponent and the mantissa's top 35 bits.
        for bit in 17..64 {
            let flipped = f64::from_bits(sum.to_bits() ^ (1 << bit));
            assert!(!plausible_sum(first, last, flipped), "bit {bit}");
        }
        // Another chunk's sum, and sums for nonsense ranges.
        assert!(!plausible_sum(first, last, partial_sum(first + 1, last + 1)));
        assert!(!plausible_sum(0, 5, 1.0) && !plausible_sum(6, 5, 0.0));
    }

    #[test]
    fn combine_is_compensated() {
        // Summed naively from the end this gives 1.1102230246251565e-16.
        assert_eq!(combine(&[1.0, 1e-16, -1.0]), 1e-16);
        assert_eq!(combine(&[]), 0.0);
    }
}
