//! Word count as MapReduce over a process pool: the text is split into chunks of lines, a
//! plain `fn` in each worker maps a chunk to its word counts (a `#[derive(Message)]` struct,
//! the partial result that travels back), and the parent reduces the partial counts into one
//! table, which must equal the count made here in one pass.
//!
//! `cargo run -p pifork --example mapreduce [-- fork|spawn|forkserver]`

use std::collections::BTreeMap;

use pifork::pool::{Pool, PoolError};
use pifork::{Message, StartMethod};

/// The text: short lines, each repeated a different number of times below.
const LINES: [&str; 6] = [
    "a process is a program in execution",
    "the parent starts a child and the child runs the target",
    "a pool hands the work out to its workers",
    "the workers map and the parent reduces",
    "a queue carries the results back to the parent",
    "shared memory needs a lock for a read modify write",
];

/// Lines per chunk handed to a worker.
const CHUNK_LINES: usize = 25;

/// What one chunk of text counts to: the map step's result.
#[derive(Message, Debug, Default, PartialEq)]
struct Partial {
    /// Lines in the chunk.
    lines: u64,
    /// Each word and how often it occurs, sorted by word.
    counts: Vec<(String, u64)>,
}

/// The map step: counts the words of a chunk of lines.
fn count_words(lines: Vec<String>) -> Partial {
    let mut counts = BTreeMap::new();
    for word in lines.iter().flat_map(|l| l.split_whitespace()) {
        *counts.entry(word.to_string()).or_insert(0u64) += 1;
    }
    Partial { lines: lines.len() as u64, counts: counts.into_iter().collect() }
}

/// The whole text: line `i` of `LINES` repeated `10 * (i + 1)` times, interleaved.
fn text() -> Vec<String> {
    let mut out = Vec::new();
    for round in 0..60 {
        for (i, line) in LINES.iter().enumerate() {
            if round < 10 * (i + 1) {
                out.push(line.to_string());
            }
        }
    }
    out
}

/// The start method named by the first argument, or the default one.
fn start_method() -> StartMethod {
    match std::env::args().nth(1) {
        None => pifork::get_start_method(),
        Some(name) => name.parse().unwrap_or_else(|e| {
            eprintln!("mapreduce: {e}");
            std::process::exit(2)
        }),
    }
}

fn main() -> Result<(), PoolError> {
    pifork::main_guard();
    let method = start_method();
    let text = text();
    let chunks: Vec<Vec<String>> = text.chunks(CHUNK_LINES).map(<[String]>::to_vec).collect();
    let n_chunks = chunks.len();

    let pool = Pool::builder().processes(2).start_method(method).build()?;
    let partials = pool.map(count_words, chunks)?;
    pool.close()?;
    pool.join()?;

    // Reduce: add the partial tables up.
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    let mut lines = 0;
    for p in &partials {
        lines += p.lines;
        for (word, n) in &p.counts {
            *total.entry(word.clone()).or_insert(0) += n;
        }
    }

    let mut top: Vec<(&String, &u64)> = total.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!("{lines} lines in {n_chunks} chunks, {} distinct words ({method})", total.len());
    for (word, n) in top.iter().take(5) {
        println!("{n:>5} {word}");
    }

    // One pass over the whole text here gives the same table.
    let whole = count_words(text);
    assert_eq!(lines, whole.lines);
    assert_eq!(total.into_iter().collect::<Vec<_>>(), whole.counts);
    // Counted by hand: 10 + 20 + ... + 60 lines; "the" three times in the line repeated 20
    // times, once in the one repeated 30 times, twice in those repeated 40 and 50 times.
    assert_eq!(lines, 210);
    let the = whole.counts.iter().find(|(w, _)| w == "the").map(|(_, n)| *n);
    assert_eq!(the, Some(3 * 20 + 30 + 2 * 40 + 2 * 50));
    Ok(())
}
