//! The counts the commands take: `100000000`, `100_000_000` or `1e8`.

/// Parses a count: `100000000`, `100_000_000` or `1e8` (also `2.5e3`); must be a whole number
/// that fits in 64 bits.
///
/// ```
/// use pifork_pi::cli::parse_count;
/// assert_eq!(parse_count("1e8"), Ok(100_000_000));
/// assert_eq!(parse_count("2.5e3"), Ok(2500));
/// assert!(parse_count("1.5").is_err());
/// ```
pub fn parse_count(text: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not a whole number (use 100000000, 100_000_000 or 1e8)");
    let t = text.trim();
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return Err(bad());
    }
    let t = t.replace('_', "");
    let (mantissa, exponent) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<u32>().map_err(|_| bad())?),
        None => (t.as_str(), 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    let overflow = || format!("'{text}' is too large");
    let shift = exponent.checked_sub(frac.len() as u32).ok_or_else(bad)?;
    let digits = format!("{int}{frac}");
    let value: u64 = digits.parse().map_err(|_| overflow())?;
    10u64.checked_pow(shift).and_then(|p| value.checked_mul(p)).ok_or_else(overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts() {
        assert_eq!(parse_count("100000000"), Ok(100_000_000));
        assert_eq!(parse_count("100_000_000"), Ok(100_000_000));
        assert_eq!(parse_count("1e8"), Ok(100_000_000));
        assert_eq!(parse_count("1E3"), Ok(1000));
        assert_eq!(parse_count("2.5e3"), Ok(2500));
        assert_eq!(parse_count("2.50e1"), Ok(25));
        assert_eq!(parse_count("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_count("0"), Ok(0));
    }

    #[test]
    fn rejects_bad_counts() {
        for bad in
            ["", "abc", "-5", "1.5", "1e", "e5", "1_", "_1", "1__0", "2.55e1", "1e-3", "+3", "0x10"]
        {
            assert!(parse_count(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            parse_count("18446744073709551616"),
            Err("'18446744073709551616' is too large".into())
        );
        assert_eq!(parse_count("1e20"), Err("'1e20' is too large".into()));
    }
}
