//! The Leibniz series pi/4 = 1 - 1/3 + 1/5 - ... : a fast kernel for a range of terms, the
//! series' remainder, and how many decimals of an estimate are right.

use super::kernel::{self, Path};

/// pi to more digits than an `f64` holds, for counting correct decimals.
pub const PI_DIGITS: &str = "3.14159265358979323846264338327950288419716939937510";

/// Lanes of independent accumulators of the division kernel: enough for the compiler to fill
/// the vector divider.
const DIVISION_LANES: usize = 8;

/// The largest supported term index: terms and products stay exact integers in an `f64`.
pub const MAX_TERMS: u64 = 1 << 50;

/// Pairs whose first denominator lies below this are summed with exact divisions: the largest
/// terms, where the kernel's expansion in powers of 1/c^2 would need more terms.
pub const EXACT_BELOW: u64 = kernel::MIN_CENTRE as u64;

/// Pairs per group of the division-free kernel (16 terms).
const GROUP_PAIRS: u64 = kernel::GROUP_TERMS / 2;

/// Sum of terms `m..=n` of (-1)^(k+1)/(2k-1) (term 1 is +1, term 2 is -1/3); 0 when m > n,
/// on the kernel path in use ([`kernel::selected`]).
///
/// # Panics
/// If `m == 0` or `n > MAX_TERMS`, or if `PIFORK_KERNEL` names a path this CPU lacks (the
/// program checks that first).
pub fn partial_sum(m: u64, n: u64) -> f64 {
    let path = kernel::selected().unwrap_or_else(|e| panic!("{e}"));
    partial_sum_on(path, m, n)
}

/// [`partial_sum`] on a given kernel path: the same bits on every path and every CPU.
///
/// Consecutive terms are taken in pairs, 1/(2k-1) - 1/(2k+1) = 2/((2k-1)(2k+1)) for odd k.
/// Pairs with a first denominator below [`EXACT_BELOW`] are exact divisions; the rest go in
/// groups of 8 pairs (16 terms) through the division-free [`kernel`], and the few pairs that
/// do not fill a group are exact divisions again. Everything is summed from the smallest term
/// up in [`kernel::LANES`] independent accumulators, reduced in a fixed pairwise order.
///
/// # Panics
/// As [`partial_sum`], and if this CPU lacks `path`.
pub fn partial_sum_on(path: Path, m: u64, n: u64) -> f64 {
    by_pairs(m, n, |x0, pairs| grouped_pair_sum(path, x0, pairs))
}

/// Terms `m..=n` as a leading even term (negative, alone), `pairs(x0, count)` — the sum of
/// `count` pairs from the denominator `x0` — and a trailing odd term (positive, alone),
/// added in that fixed order.
///
/// # Panics
/// If `m == 0` or `n > MAX_TERMS`.
fn by_pairs(m: u64, n: u64, pairs: impl FnOnce(u64, u64) -> f64) -> f64 {
    assert!(m >= 1 && n <= MAX_TERMS, "terms must lie in 1..={MAX_TERMS}");
    if m > n {
        return 0.0;
    }
    let (lead, first) =
        if m.is_multiple_of(2) { (-1.0 / (2 * m - 1) as f64, m + 1) } else { (0.0, m) };
    if first > n {
        return lead;
    }
    let count = n - first + 1;
    let tail = if !count.is_multiple_of(2) { 1.0 / (2 * n - 1) as f64 } else { 0.0 };
    let body = pairs(2 * first - 1, count / 2);
    (tail + body) + lead
}

/// One pair 2/(x(x+2)), by an exact division.
fn pair(x: u64) -> f64 {
    let x = x as f64;
    2.0 / (x * (x + 2.0))
}

/// Sum over j in 0..pairs of 2/(x(x+2)) with x = x0 + 4j, smallest first, on `path`.
fn grouped_pair_sum(path: Path, x0: u64, pairs: u64) -> f64 {
    const LANES: usize = kernel::LANES;
    // Pairs 0..head are exact divisions; then whole groups; then `loose` pairs at the top.
    let head = if x0 >= EXACT_BELOW { 0 } else { (EXACT_BELOW - x0).div_ceil(4).min(pairs) };
    let groups = (pairs - head) / GROUP_PAIRS;
    let loose = (pairs - head) % GROUP_PAIRS;
    let (blocks, extra) = (groups / LANES as u64, (groups % LANES as u64) as usize);
    // Group g covers the pairs from x = gx0 + 32g; its 16 denominators are centred on +15.
    let gx0 = x0 + 4 * head;
    let centre = |g: u64| (gx0 + 2 * kernel::GROUP_TERMS * g + kernel::GROUP_TERMS - 1) as f64;
    let mut acc = [0.0f64; LANES];
    // Smallest first: the loose pairs (lane i takes pair i from the top), the groups of the
    // incomplete block (lane i takes group blocks*LANES + i), the full blocks downwards, and
    // last the head pairs, downwards (lane j % LANES takes pair j).
    let top = head + groups * GROUP_PAIRS;
    for (i, a) in acc.iter_mut().enumerate().take(loose as usize) {
        *a += pair(x0 + 4 * (top + i as u64));
    }
    for (i, a) in acc.iter_mut().enumerate().take(extra) {
        *a += kernel::group(centre(blocks * LANES as u64 + i as u64));
    }
    if blocks > 0 {
        acc = kernel::block_sums(path, acc, centre((blocks - 1) * LANES as u64), blocks);
    }
    for j in (0..head).rev() {
        acc[j as usize % LANES] += pair(x0 + 4 * j);
    }
    reduce(acc)
}

/// A fixed pairwise reduction of lanes.
fn reduce<const L: usize>(mut acc: [f64; L]) -> f64 {
    let mut width = L;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0]
}

/// The previous kernel, for comparison: the same pairs, each by a division, in
/// `DIVISION_LANES` accumulators that the compiler turns into vector divisions (one division
/// per two terms: bound by the divider).
pub fn division_kernel(m: u64, n: u64) -> f64 {
    by_pairs(m, n, |x0, pairs| division_pair_sum(x0 as f64, pairs))
}

/// Sum over j in 0..pairs of 2/(x(x+2)) with x = x0 + 4j, smallest (highest j) first. Not
/// inlined: `make mca` finds its loop by name.
#[inline(never)]
fn division_pair_sum(x0: f64, pairs: u64) -> f64 {
    const LANES: usize = DIVISION_LANES;
    let blocks = pairs / LANES as u64;
    let rest = pairs % LANES as u64;
    let mut acc = [0.0f64; LANES];
    // The incomplete block sits at the top (smallest terms): lane i takes pair blocks*L + i.
    for (i, a) in acc.iter_mut().enumerate().take(rest as usize) {
        let x = x0 + 4.0 * (blocks * LANES as u64 + i as u64) as f64;
        *a += 2.0 / (x * (x + 2.0));
    }
    // Then the full blocks, downwards. All values are integers below 2^53, so the stepping
    // of `x` is exact.
    let step = 4.0 * LANES as f64;
    let mut x = [0.0f64; LANES];
    for (i, xi) in x.iter_mut().enumerate() {
        *xi = x0 + 4.0 * (blocks.saturating_sub(1) * LANES as u64 + i as u64) as f64;
    }
    for _ in 0..blocks {
        for i in 0..LANES {
            acc[i] += 2.0 / (x[i] * (x[i] + 2.0));
            x[i] -= step;
        }
    }
    reduce(acc)
}

/// The book's loop, for comparison: one accumulator, one division and a sign flip per term.
pub fn plain_sum(m: u64, n: u64) -> f64 {
    let mut sum = 0.0;
    let mut sign = if m % 2 == 1 { 1.0 } else { -1.0 };
    for k in m..=n {
        sum += sign / (2 * k - 1) as f64;
        sign = -sign;
    }
    sum
}

/// The asymptotic remainder R(N) with pi = 4*S_N + (-1)^N * R(N); exact to far below `f64`
/// precision for N >= 1000.
pub fn remainder(n: u64) -> f64 {
    let x = n as f64;
    let r =
        1.0 / x - 1.0 / (4.0 * x.powi(3)) + 5.0 / (16.0 * x.powi(5)) - 61.0 / (64.0 * x.powi(7));
    if n.is_multiple_of(2) { r } else { -r }
}

/// 4*S_N corrected by the remainder expansion: pi to about f64 precision for large N.
pub fn corrected(estimate: f64, n: u64) -> f64 {
    estimate + remainder(n)
}

/// How many decimals of `estimate` agree with pi (digits after the point, compared on the
/// exact decimal expansion of the `f64`).
pub fn correct_decimals(estimate: f64) -> u32 {
    let text = format!("{estimate:.48}");
    let (ours, pi) = (text.as_bytes(), PI_DIGITS.as_bytes());
    if ours.len() < 2 || ours[..2] != pi[..2] {
        return 0;
    }
    ours[2..].iter().zip(&pi[2..]).take_while(|(a, b)| a == b).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{chunk_plan, combine};

    /// The partial sum for small ranges, term by term with compensation, and the sum of the
    /// terms' magnitudes (the scale of its rounding error).
    fn reference(m: u64, n: u64) -> (f64, f64) {
        let terms: Vec<f64> =
            (m..=n).map(|k| if k % 2 == 1 { 1.0 } else { -1.0 } / (2 * k - 1) as f64).collect();
        (combine(&terms), terms.iter().map(|t| t.abs()).sum())
    }

    #[test]
    fn first_terms() {
        assert_eq!(partial_sum(1, 1), 1.0);
        assert_eq!(partial_sum(2, 2), -1.0 / 3.0);
        assert_eq!(partial_sum(3, 3), 1.0 / 5.0);
        assert_eq!(partial_sum(5, 4), 0.0);
        assert!((partial_sum(1, 2) - 2.0 / 3.0).abs() < 1e-16);
    }

    #[test]
    fn every_parity_and_length_matches_the_term_by_term_sum() {
        for m in 1..40 {
            for n in m..m + 60 {
                let (got, (want, scale)) = (partial_sum(m, n), reference(m, n));
                assert!(
                    (got - want).abs() <= 4.0 * f64::EPSILON * scale,
                    "{m}..={n}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn splitting_a_range_changes_the_sum_by_at_most_rounding() {
        let whole = partial_sum(1, 1_000_003);
        let split = combine(&[partial_sum(1, 500_000), partial_sum(500_001, 1_000_003)]);
        assert!((whole - split).abs() < 4.0 * f64::EPSILON);
    }

    #[test]
    fn division_kernel_agrees() {
        for (m, n) in [(1, 1), (2, 9), (1, 5000), (7, 100_001), (1 << 20, 3 << 20)] {
            let (new, old) = (partial_sum(m, n), division_kernel(m, n));
            // Scaled by the magnitude of the leading term: a range from an even m cancels.
            let scale = old.abs() + 1.0 / (2 * m - 1) as f64;
            assert!((new - old).abs() <= 8.0 * f64::EPSILON * scale, "{m}..={n}: {new} vs {old}");
        }
    }

    #[test]
    fn every_path_gives_the_same_bits() {
        let ranges = [(1, 3_000_001), (2, 1_000_000), (1 << 20, (1 << 21) + 12_345), (9, 4_000)];
        for (m, n) in ranges {
            let want = partial_sum_on(Path::Baseline, m, n).to_bits();
            for path in kernel::supported() {
                assert_eq!(partial_sum_on(path, m, n).to_bits(), want, "{path} {m}..={n}");
            }
        }
    }

    #[test]
    fn plain_loop_agrees() {
        let (fast, plain) = (partial_sum(7, 100_001), plain_sum(7, 100_001));
        assert!((fast - plain).abs() < 1e-12, "{fast} vs {plain}");
    }

    #[test]
    fn matches_the_remainder_expansion() {
        for n in [1000u64, 1001, 65_536, 1_000_000, 9_999_999] {
            let estimate = 4.0
                * combine(
                    &chunk_plan(n).iter().map(|&(a, b)| partial_sum(a, b)).collect::<Vec<_>>(),
                );
            let exact = std::f64::consts::PI - remainder(n);
            assert!(((estimate - exact) / exact).abs() < 1e-15, "N={n}: {estimate} vs {exact}");
        }
    }

    #[test]
    fn counts_correct_decimals() {
        assert_eq!(correct_decimals(std::f64::consts::PI), 15);
        assert_eq!(correct_decimals(3.141_592_9), 6);
        assert_eq!(correct_decimals(3.1), 1);
        assert_eq!(correct_decimals(3.2), 0);
        assert_eq!(correct_decimals(2.0), 0);
        assert_eq!(correct_decimals(f64::NAN), 0);
    }

    #[test]
    fn remainder_sign_follows_parity() {
        assert!(remainder(1000) > 0.0 && remainder(1001) < 0.0);
        let n = 1_000_000;
        assert!((corrected(4.0 * partial_sum(1, n), n) - std::f64::consts::PI).abs() < 1e-14);
    }
}
