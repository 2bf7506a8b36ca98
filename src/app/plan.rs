//! The fixed cut of the series 1..=N into chunks, independent of the worker count, and the
//! order-fixed combination of the chunks' partial sums: the same bits however the work is
//! shared out.

/// Number of chunks the series is cut into when it is long enough: divisible by 1, 2, 3, 4,
/// 6, 8, 12, 16 and 24, so common worker counts get equal shares.
pub const CHUNKS: u64 = 48;

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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn combine_is_compensated() {
        // Summed naively from the end this gives 1.1102230246251565e-16.
        assert_eq!(combine(&[1.0, 1e-16, -1.0]), 1e-16);
        assert_eq!(combine(&[]), 0.0);
    }
}
