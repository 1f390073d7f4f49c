//! Errors of the analyses.

use thiserror::Error;

/// What went wrong in an analysis.
#[derive(Debug, Error)]
pub enum Error {
    /// Reading a checkpoint or a tensor failed (the io error names the file and tensor).
    #[error(transparent)]
    Io(#[from] weightspace_io::Error),
    /// The request cannot be answered from these inputs (too few models, nothing in common, …).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An [`Error::Invalid`] from a message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}
