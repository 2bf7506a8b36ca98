//! The reports of the commands, each as text and as one JSON object, one module per command,
//! and the JSON writer they share.
//!
//! ```text
//! pi        pifork pi: the estimate, its error, the workers
//! race      pifork race: the runners, the first to finish
//! bench     pifork bench: the kernel figures, the round trips, the scaling table, and
//!           what saving a chunk of the service's state costs
//! status    pifork status: the service's progress, from its state
//! info      pifork info: what the system offers
//! cluster   pifork-mpi pi: pi's report and each rank's part
//! json      objects and arrays, strings escaped once, numbers in fixed forms
//! ```

use std::time::Duration;

mod bench;
mod cluster;
mod info;
pub mod json;
mod pi;
mod race;
mod sharing;
mod status;

pub use bench::{
    BenchReport, bench_json, bench_text, kernel_text, round_trips_json, round_trips_text,
    state_saving_json, state_saving_text,
};
pub use cluster::{RankReport, cluster_json, cluster_text};
pub use info::{format_cpu_list, info_json, info_text};
pub use json::string as json_string;
pub use pi::{pi_json, pi_text};
pub use race::{race_json, race_text};
pub use sharing::{sharing_json, sharing_text};
pub use status::{status_json, status_text};

/// `d` in milliseconds, as the reports show durations.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a \"b\" \\ c\n\u{1}"), "\"a \\\"b\\\" \\\\ c\\n\\u0001\"");
    }
}
