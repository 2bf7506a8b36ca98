//! `pifork bench --sharing`: each way's median wall time against the default engine's.

use std::fmt::Write;

use super::json::{Array, Fixed, Object};
use super::millis;
use crate::bench::SharingRow;

/// Each row's wall time relative to the first (the default way).
fn relative(rows: &[SharingRow], row: &SharingRow) -> f64 {
    let base = rows.first().map_or(0.0, |r| r.wall.as_secs_f64());
    if base > 0.0 { row.wall.as_secs_f64() / base } else { 0.0 }
}

/// The plain-text report: a line per way.
pub fn sharing_text(rows: &[SharingRow], terms: u64, workers: usize) -> String {
    let mut out = format!("sharing ({terms} terms, {workers} workers, medians):\n");
    let _ = writeln!(out, "  via       wall ms  vs pipe  same bits");
    let first = rows.first().map(|r| r.bits);
    for r in rows {
        let same = if Some(r.bits) == first { "yes" } else { "NO" };
        let _ = writeln!(
            out,
            "  {:<6} {:>10.3} {:>7.2}x  {same}",
            r.via.as_str(),
            millis(r.wall),
            relative(rows, r)
        );
    }
    out
}

/// The JSON report: an object per way.
pub fn sharing_json(rows: &[SharingRow], terms: u64, workers: usize) -> String {
    let first = rows.first().map(|r| r.bits);
    let ways: Array = rows
        .iter()
        .map(|r| {
            Object::new()
                .field("via", r.via.as_str())
                .field("wall_ms", Fixed(millis(r.wall), 3))
                .field("vs_pipe", Fixed(relative(rows, r), 3))
                .field("same_bits", Some(r.bits) == first)
        })
        .collect();
    Object::new().field("terms", terms).field("workers", workers).field("sharing", ways).finish()
}
