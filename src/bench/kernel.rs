//! The kernel bench: pifork's kernel on one core against the plain loop, the previous
//! (division) kernel, the core's division limit and the floating-point floor of the kernel's
//! own operation mix, and on every other kernel path the CPU runs.

use std::hint::black_box;

use super::stats::{NOISY_SPREAD, Timing};
use crate::kernel::{self, Path};
use crate::pi;

/// Lanes of the division-limit loop: the same as the kernel's.
const LANES: usize = 8;

/// `count` independent f64 divisions in the kernel's shape (lanes, no dependency between
/// divisions): the division throughput the core offers to this instruction set.
pub fn division_loop(count: u64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let mut x = [0.0f64; LANES];
    for (i, xi) in x.iter_mut().enumerate() {
        *xi = 3.0 + i as f64;
    }
    for _ in 0..count / LANES as u64 {
        for i in 0..LANES {
            acc[i] += 1.0 / x[i];
            x[i] += LANES as f64;
        }
    }
    acc.iter().sum()
}

/// Single-core kernel figures, in ns.
#[derive(Debug, Clone)]
pub struct KernelFigures {
    /// Terms per measurement of the slow loops (plain, division kernel, division limit).
    pub terms: u64,
    /// Terms per measurement of the fast ones (the kernel, its floor, the other vector paths):
    /// [`FAST_FACTOR`] times as many, so that they run as long.
    pub fast_terms: u64,
    /// The kernel path measured.
    pub path: Path,
    /// pifork's kernel, ns per term.
    pub kernel_ns_per_term: f64,
    /// The plain one-accumulator loop, ns per term.
    pub plain_ns_per_term: f64,
    /// The previous kernel (one division per two terms), ns per term.
    pub division_kernel_ns_per_term: f64,
    /// Independent divisions, ns per division.
    pub division_ns: f64,
    /// The kernel's operation mix on independent accumulators, ns per term: the floor of the
    /// core's floating-point pipes for this kernel on this path.
    pub floor_ns_per_term: f64,
    /// The kernel on every other path this CPU runs, ns per term.
    pub other_paths: Vec<(Path, f64)>,
    /// The largest spread of the repeats of any figure above, and that figure's name.
    pub spread: (f64, &'static str),
}

impl KernelFigures {
    /// Kernel speed over the plain loop's.
    pub fn speedup(&self) -> f64 {
        self.plain_ns_per_term / self.kernel_ns_per_term
    }

    /// Kernel speed over the previous (division) kernel's.
    pub fn over_division_kernel(&self) -> f64 {
        self.division_kernel_ns_per_term / self.kernel_ns_per_term
    }

    /// The division kernel does one division per two terms: the fraction of the division
    /// limit it reaches.
    pub fn of_division_limit(&self) -> f64 {
        self.division_ns / (2.0 * self.division_kernel_ns_per_term)
    }

    /// The fraction of the floating-point floor of its own operation mix the kernel reaches.
    pub fn of_floor(&self) -> f64 {
        self.floor_ns_per_term / self.kernel_ns_per_term
    }

    /// Why these figures may not be trusted: repeats that spread by more than
    /// [`NOISY_SPREAD`], or a kernel faster than a limit it cannot beat.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (spread, what) = self.spread;
        if spread > NOISY_SPREAD {
            out.push(format!(
                "noisy run: the {what} repeats spread by {:.0}% (above {:.0}%); rerun on an idle machine",
                100.0 * spread,
                100.0 * NOISY_SPREAD
            ));
        }
        for (name, share) in
            [("division limit", self.of_division_limit()), ("FP floor", self.of_floor())]
        {
            if share > 1.0 {
                out.push(format!(
                    "noisy run: {:.1}% of the {name}, above the 100% a core can deliver",
                    100.0 * share
                ));
            }
        }
        out
    }
}

/// Lanes of the operation-mix floor loop per iteration: one group's operations on each lane
/// of one vector of `path`.
fn floor_terms_per_iteration(path: Path) -> u64 {
    kernel::GROUP_TERMS * path.width() as u64
}

/// How many more terms the fast figures take than the slow ones.
pub const FAST_FACTOR: u64 = 10;

/// Measures [`KernelFigures`] on the calling thread, for the kernel path in use. Each figure is
/// run once untimed first (page faults, clock ramp-up), then `repeat` times.
pub fn kernel_figures(terms: u64, repeat: usize) -> KernelFigures {
    let path = kernel::selected().unwrap_or_else(|_| kernel::best());
    let fast = terms.saturating_mul(FAST_FACTOR).min(pi::MAX_TERMS);
    let mut spread = (0.0, "kernel");
    let mut figure = |what: &'static str, terms: u64, f: &mut dyn FnMut()| -> f64 {
        f();
        let t = Timing::measure(repeat, f);
        if t.spread > spread.0 {
            spread = (t.spread, what);
        }
        t.median.as_secs_f64() * 1e9 / terms as f64
    };
    let kernel = figure("kernel", fast, &mut || {
        black_box(pi::partial_sum_on(path, black_box(1), black_box(fast)));
    });
    let plain = figure("plain loop", terms, &mut || {
        black_box(pi::plain_sum(black_box(1), black_box(terms)));
    });
    let division_kernel = figure("division kernel", terms, &mut || {
        black_box(pi::division_kernel(black_box(1), black_box(terms)));
    });
    let division = figure("division limit", terms, &mut || {
        black_box(division_loop(black_box(terms)));
    });
    let per = floor_terms_per_iteration(path);
    let floor = figure("FP floor", fast / per * per, &mut || {
        black_box(kernel::mix(path, black_box(fast / per)));
    });
    let mut other_paths = Vec::new();
    for other in kernel::supported().into_iter().rev().filter(|&p| p != path) {
        // The baseline may call the C library for every FMA: fewer terms keep it short.
        let n = if other == Path::Baseline { (terms / 16).max(1 << 16) } else { fast };
        let what = other.as_str();
        let ns = figure(what, n, &mut || {
            black_box(pi::partial_sum_on(other, black_box(1), black_box(n)));
        });
        other_paths.push((other, ns));
    }
    KernelFigures {
        terms,
        fast_terms: fast,
        path,
        kernel_ns_per_term: kernel,
        plain_ns_per_term: plain,
        division_kernel_ns_per_term: division_kernel,
        division_ns: division,
        floor_ns_per_term: floor,
        other_paths,
        spread,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_loop_computes_the_harmonic_tail() {
        let want: f64 = (3..3 + 64).map(|k| 1.0 / k as f64).sum();
        assert!((division_loop(64) - want).abs() < 1e-12);
    }

    fn figures() -> KernelFigures {
        KernelFigures {
            terms: 1,
            fast_terms: 10,
            path: Path::Baseline,
            kernel_ns_per_term: 0.05,
            plain_ns_per_term: 2.0,
            division_kernel_ns_per_term: 0.5,
            division_ns: 0.8,
            floor_ns_per_term: 0.04,
            other_paths: vec![],
            spread: (0.02, "kernel"),
        }
    }

    #[test]
    fn figures_ratios() {
        let f = figures();
        assert_eq!(f.speedup(), 40.0);
        assert_eq!(f.over_division_kernel(), 10.0);
        assert_eq!(f.of_division_limit(), 0.8);
        assert!((f.of_floor() - 0.8).abs() < 1e-12);
        assert!(f.warnings().is_empty());
    }

    #[test]
    fn noisy_figures_warn() {
        let mut f = figures();
        f.spread = (0.25, "plain loop");
        f.floor_ns_per_term = 0.06;
        let w = f.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("plain loop repeats spread by 25%"), "{}", w[0]);
        assert!(w[1].contains("120.0% of the FP floor"), "{}", w[1]);
    }

    #[test]
    fn floor_loop_runs_on_every_path() {
        for path in kernel::supported() {
            assert!(kernel::mix(path, 1000).is_finite(), "{path}");
        }
    }
}
