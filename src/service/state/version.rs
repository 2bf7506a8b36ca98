//! The versions of the state file, each named by its first line: v3 (this one: checksums on
//! every line), v2 (read and rewritten as v3) and v1 (kernel 1, refused).

/// The first line of a state file of this version.
pub const MAGIC: &str = "pifork-state v3";

/// The first line of the format before lines carried checksums (read, and rewritten as v3).
pub const MAGIC_V2: &str = "pifork-state v2";

/// The first line of the format before the kernel version was recorded (kernel 1).
pub const MAGIC_V1: &str = "pifork-state v1";

/// A version of the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Chunks summed by kernel 1, no kernel line.
    V1,
    /// A kernel line, no checksums.
    V2,
    /// A checksum at the end of every line after the first.
    V3,
}

impl Version {
    /// The version a file's first line (with its end of line) names, if it names one.
    pub fn of(first_line: &str) -> Option<Version> {
        match first_line.strip_suffix('\n')? {
            MAGIC => Some(Version::V3),
            MAGIC_V2 => Some(Version::V2),
            MAGIC_V1 => Some(Version::V1),
            _ => None,
        }
    }
}
