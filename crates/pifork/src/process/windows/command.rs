//! What a spawned child is created with on Windows: its command line, its environment block
//! and its affinity mask.

use std::ffi::OsStr;
use std::os::windows::ffi::OsStrExt;

use crate::error::{Error, Result};
use crate::process::entry::SPAWN_ENV;

/// The affinity mask of `cpus` (bit `n` for CPU `n`).
pub(super) fn affinity_mask(cpus: &[usize]) -> Result<usize> {
    cpus.iter().try_fold(0usize, |mask, &cpu| {
        1usize.checked_shl(cpu as u32).map(|bit| mask | bit).ok_or(Error::CpuUnavailable { cpu })
    })
}

/// Appends `arg` to a command line, quoted the way the C runtime's `argv` parser (and
/// `CommandLineToArgvW`) reads it back: bare when it has no blank or quote, else in quotes
/// with backslashes doubled where they precede a quote.
pub(super) fn push_quoted(line: &mut Vec<u16>, arg: &OsStr) {
    let units: Vec<u16> = arg.encode_wide().collect();
    let (quote, backslash) = (u16::from(b'"'), u16::from(b'\\'));
    let plain = !units.is_empty()
        && !units.iter().any(|&c| c == u16::from(b' ') || c == u16::from(b'\t') || c == quote);
    if plain {
        line.extend_from_slice(&units);
        return;
    }
    line.push(quote);
    let mut backslashes = 0;
    for &c in &units {
        if c == backslash {
            backslashes += 1;
        } else {
            if c == quote {
                // Each backslash before a quote doubles, and the quote gets its own.
                line.extend(std::iter::repeat_n(backslash, backslashes + 1));
            }
            backslashes = 0;
        }
        line.push(c);
    }
    // Backslashes before the closing quote double too.
    line.extend(std::iter::repeat_n(backslash, backslashes));
    line.push(quote);
}

/// The child's environment block: this process's variables without any old `PIFORK_SPAWN`,
/// plus `PIFORK_SPAWN=spec`, sorted by name without regard to case as Windows expects,
/// as NUL-terminated UTF-16 strings closed by one more NUL.
pub(super) fn environment_block(spec: &str) -> Vec<u16> {
    let mut vars: Vec<(std::ffi::OsString, std::ffi::OsString)> =
        std::env::vars_os().filter(|(k, _)| !k.eq_ignore_ascii_case(SPAWN_ENV)).collect();
    vars.push((SPAWN_ENV.into(), spec.into()));
    vars.sort_by_cached_key(|(k, _)| k.to_string_lossy().to_uppercase());
    let mut block = Vec::new();
    for (k, v) in &vars {
        block.extend(k.encode_wide());
        block.push(u16::from(b'='));
        block.extend(v.encode_wide());
        block.push(0);
    }
    block.push(0);
    if block.len() == 1 {
        block.push(0);
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(arg: &str) -> String {
        let mut line = Vec::new();
        push_quoted(&mut line, OsStr::new(arg));
        String::from_utf16(&line).unwrap()
    }

    #[test]
    fn arguments_are_quoted_for_the_c_runtime() {
        assert_eq!(quoted(r"C:\pifork\pifork.exe"), r"C:\pifork\pifork.exe");
        assert_eq!(quoted(r"C:\Program Files\p.exe"), r#""C:\Program Files\p.exe""#);
        assert_eq!(quoted(""), r#""""#);
        assert_eq!(quoted(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quoted(r#"a\"b c"#), r#""a\\\"b c""#);
        assert_eq!(quoted(r"dir with space\"), r#""dir with space\\""#);
        assert_eq!(quoted(r"a\\b c"), r#""a\\b c""#);
    }

    #[test]
    fn environment_block_replaces_the_spec_and_ends_with_two_nuls() {
        let block = environment_block("v2;x;1;2;-1;0;");
        assert!(block.ends_with(&[0, 0]));
        let text = String::from_utf16_lossy(&block);
        let entries: Vec<&str> = text.split('\0').filter(|s| !s.is_empty()).collect();
        let specs: Vec<&&str> = entries.iter().filter(|e| e.starts_with("PIFORK_SPAWN=")).collect();
        assert_eq!(specs, [&"PIFORK_SPAWN=v2;x;1;2;-1;0;"]);
        let names: Vec<String> =
            entries.iter().map(|e| e.split('=').next().unwrap_or("").to_uppercase()).collect();
        assert!(names.windows(2).all(|w| w[0] <= w[1]), "sorted: {names:?}");
    }

    #[test]
    fn masks_name_the_cpus() {
        assert_eq!(affinity_mask(&[0]).unwrap(), 1);
        assert_eq!(affinity_mask(&[1, 3]).unwrap(), 0b1010);
        assert_eq!(affinity_mask(&[usize::BITS as usize]), Err(Error::CpuUnavailable { cpu: 64 }));
    }
}
