//! Config errors that say where: `file:line:column: what is wrong`, or the flag at fault.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why the config could not be loaded. The server refuses to start on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the config file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value is wrong.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A command-line flag has a value that is wrong (or conflicts with the file).
    #[error("{flag}: {message}")]
    Flag {
        /// The flag, as typed (`--shards`).
        flag: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The line and column of an [`ConfigError::Invalid`] error.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Invalid { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }
}

/// 1-based (line, column) of byte offset `at` in `src`; the column counts characters.
pub(crate) fn line_col(src: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(src.len());
    while !src.is_char_boundary(at) {
        at -= 1;
    }
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = src[line_start..at].chars().count() + 1;
    (line, column)
}

/// Where a value came from: the file (a byte range) or a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum At {
    File(Range<usize>),
    Flag(String),
}

/// Builds errors for one config text.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub src: &'a str,
}

impl Source<'_> {
    pub fn at_span(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.src, span.start);
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    pub fn at(&self, at: &At, message: impl Into<String>) -> ConfigError {
        match at {
            At::File(span) => self.at_span(span.clone(), message),
            At::Flag(flag) => ConfigError::Flag {
                flag: flag.clone(),
                message: message.into(),
            },
        }
    }

    /// `file:line:col: message` for a warning.
    pub fn warning(&self, span: Range<usize>, message: &str) -> String {
        let (line, column) = line_col(self.src, span.start);
        format!("{}:{line}:{column}: {message}", self.path.display())
    }
}
