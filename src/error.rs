//! The crate's error type for configuration, files and data.
//!
//! Shape mismatches in numeric calls are programming errors and panic at the public boundary
//! (see each function's `# Panics`); numerical outcomes are data in a report. Everything a
//! user can get wrong from outside the program (flags, files, architectures, data) is an
//! [`Error`], whose `Display` is one line saying what was wrong, where, and what to do.

use std::fmt;
use std::path::PathBuf;

/// Result alias with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong outside of a numeric kernel.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An invalid configuration value (architecture, flag, hyper-parameter).
    Config(String),
    /// A file that could not be read or written.
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file that was read but whose contents are wrong (bad magic, truncated, …).
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Data that is well-formed but unusable (NaN, mismatched counts, wrong width).
    Data(String),
    /// A plan that would need more memory than allowed.
    OutOfMemory {
        /// What was being planned.
        what: String,
        /// Bytes it would need.
        needed: u64,
        /// Bytes allowed.
        budget: u64,
        /// What to lower.
        hint: String,
    },
    /// A GPU / CUDA failure: driver message or NVRTC log.
    Device(String),
    /// A failed or timed-out collective between the processes of a distributed run
    /// ([`crate::dist`]).
    Comm(String),
}

impl Error {
    /// Shorthand for [`Error::Config`].
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
    /// Shorthand for [`Error::Data`].
    pub fn data(msg: impl Into<String>) -> Self {
        Error::Data(msg.into())
    }
    /// Shorthand for [`Error::Format`].
    pub fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }
    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "invalid configuration: {m}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Format { path, problem } => write!(f, "{}: {problem}", path.display()),
            Error::Data(m) => write!(f, "bad data: {m}"),
            Error::OutOfMemory {
                what,
                needed,
                budget,
                hint,
            } => write!(
                f,
                "{what} needs {:.2} GiB but the memory budget is {:.2} GiB; {hint}",
                *needed as f64 / (1u64 << 30) as f64,
                *budget as f64 / (1u64 << 30) as f64
            ),
            Error::Device(m) => write!(f, "device error: {m}"),
            Error::Comm(m) => write!(f, "communication error: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `msg` as one short line: control characters (newlines included) become spaces and
/// anything past 300 characters is cut (marked with `…`), so that an error quoting bad
/// input stays one readable line.
pub fn one_line(msg: &str) -> String {
    const MAX: usize = 300;
    let mut out: String = msg
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if msg.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn one_line_flattens_control_characters_and_cuts_long_messages() {
        assert_eq!(one_line("a\nb\tc"), "a b c");
        let long = "x".repeat(301);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with('…'));
        assert_eq!(one_line(&"y".repeat(300)), "y".repeat(300));
    }
}
