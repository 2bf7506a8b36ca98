//! `pifork status`: the service's progress, read from its state.

use std::fmt::Write;

use super::json::{Fixed, Object};
use crate::service::state::{FILE, State};

/// Rate (terms per second of computing) and the seconds left at that rate.
fn rate_and_eta(state: &State) -> (Option<f64>, Option<f64>) {
    let done = state.terms_done();
    let rate = (state.elapsed > 0.0 && done > 0).then(|| done as f64 / state.elapsed);
    let eta = rate.map(|r| (state.terms - done) as f64 / r);
    (rate, eta)
}

/// `pifork status`: the service's progress, read from its state.
pub fn status_text(state: &State, dir: &std::path::Path) -> String {
    let mut out = String::new();
    let done = state.terms_done();
    let (rate, eta) = rate_and_eta(state);
    let _ = writeln!(out, "state:       {}", dir.join(FILE).display());
    let _ = writeln!(
        out,
        "terms done:  {done} of {} ({:.2}%)",
        state.terms,
        100.0 * done as f64 / state.terms as f64
    );
    let _ = writeln!(out, "chunks done: {} of {}", state.done.len(), state.chunks());
    match state.estimate() {
        Some(e) => {
            let _ = writeln!(
                out,
                "estimate:    {e:.15} (first {} terms), error {:+.3e}",
                state.prefix_terms(),
                e - std::f64::consts::PI
            );
        }
        None => out.push_str("estimate:    none yet\n"),
    }
    match rate {
        Some(r) => {
            let _ = writeln!(out, "rate:        {r:.3e} terms/s over {:.1} s", state.elapsed);
        }
        None => out.push_str("rate:        unknown yet\n"),
    }
    if state.complete() {
        out.push_str("eta:         done\n");
    } else if let Some(eta) = eta {
        let _ = writeln!(out, "eta:         {eta:.0} s");
    }
    out
}

/// `pifork status --json`: `estimate`, `error` and `rate` are null until known; `eta_s` is 0
/// once complete.
pub fn status_json(state: &State) -> String {
    let (rate, eta) = rate_and_eta(state);
    Object::new()
        .field("terms", state.terms)
        .field("chunk", state.chunk)
        .field("terms_done", state.terms_done())
        .field("chunks_done", state.done.len())
        .field("chunks", state.chunks())
        .field("estimate", state.estimate())
        .field("estimate_terms", state.prefix_terms())
        .field("error", state.estimate().map(|e| e - std::f64::consts::PI))
        .field("elapsed_s", Fixed(state.elapsed, 3))
        .field("rate", rate)
        .field("eta_s", if state.complete() { Some(0.0) } else { eta })
        .field("complete", state.complete())
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pi;

    /// A state of 10 chunks of which the first `done` are finished but for the fourth (all
    /// ten when `done` is 10).
    fn state(done: u64) -> State {
        let mut state = State::new(10_000_000, 1_000_000);
        state.elapsed = 1.23456;
        for i in (0..done).filter(|&i| i != 3 || done == 10) {
            let (first, last) = state.bounds(i);
            state.done.insert(i, pi::partial_sum(first, last));
        }
        state
    }

    #[test]
    fn status_reports_are_exact() {
        assert_eq!(
            status_json(&state(0)),
            "{\"terms\":10000000,\"chunk\":1000000,\"terms_done\":0,\"chunks_done\":0,\
            \"chunks\":10,\"estimate\":null,\"estimate_terms\":0,\"error\":null,\
            \"elapsed_s\":1.235,\"rate\":null,\"eta_s\":null,\"complete\":false}"
        );
        assert_eq!(
            status_json(&state(5)),
            "{\"terms\":10000000,\"chunk\":1000000,\"terms_done\":4000000,\"chunks_done\":4,\
            \"chunks\":10,\"estimate\":3.1415923202564597,\"estimate_terms\":3000000,\
            \"error\":-3.33333333379926e-7,\"elapsed_s\":1.235,\"rate\":3240020.736132711,\
            \"eta_s\":1.8518400000000002,\"complete\":false}"
        );
        assert_eq!(
            status_json(&state(10)),
            "{\"terms\":10000000,\"chunk\":1000000,\"terms_done\":10000000,\"chunks_done\":10,\
            \"chunks\":10,\"estimate\":3.141592553589793,\"estimate_terms\":10000000,\
            \"error\":-1.0000000028043132e-7,\"elapsed_s\":1.235,\"rate\":8100051.840331777,\
            \"eta_s\":0.0,\"complete\":true}"
        );
        let dir = std::path::Path::new("/x");
        let text = concat!(
            "state:       /x/state\n",
            "terms done:  4000000 of 10000000 (40.00%)\n",
            "chunks done: 4 of 10\n",
            "estimate:    3.141592320256460 (first 3000000 terms), error -3.333e-7\n",
            "rate:        3.240e6 terms/s over 1.2 s\n",
            "eta:         2 s\n",
        );
        assert_eq!(status_text(&state(5), dir), text);
        let text = concat!(
            "state:       /x/state\n",
            "terms done:  0 of 10000000 (0.00%)\n",
            "chunks done: 0 of 10\n",
            "estimate:    none yet\n",
            "rate:        unknown yet\n",
        );
        assert_eq!(status_text(&state(0), dir), text);
    }
}
