//! Errors a person can act on: where (file, line, column), what was expected, what was found.

use std::fmt;

/// One problem in a config file or a control command.
///
/// Displayed as `file:line:col: expected <expected>, found <found>`, the form compilers use,
/// so editors can jump to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// File name, or `<ctl>` for a command from the control socket.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: expected {}, found {}",
            self.file, self.line, self.col, self.expected, self.found
        )
    }
}

impl std::error::Error for Error {}

/// An error inside one line, before the file and line are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based column.
    pub col: usize,
    pub expected: String,
    pub found: String,
}

impl LineError {
    pub fn new(col: usize, expected: impl Into<String>, found: impl Into<String>) -> Self {
        LineError {
            col,
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub fn at(self, file: &str, line: usize) -> Error {
        Error {
            file: file.to_string(),
            line,
            col: self.col,
            expected: self.expected,
            found: self.found,
        }
    }
}

/// Quote a token for an error message, escaping anything unprintable.
pub fn quoted(s: &str) -> String {
    format!("`{}`", s.escape_debug())
}
