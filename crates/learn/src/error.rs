//! Errors of the learn crate.

use std::path::PathBuf;

/// Everything that can go wrong loading a zoo, training or predicting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A zoo folder that cannot be used (missing, no catalog, mixed architectures, ...).
    #[error("{path}: {msg}")]
    Zoo {
        /// The zoo folder or file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A target that is not a catalog column (or not usable as a target).
    #[error("unknown target `{target}`: {msg}")]
    Target {
        /// The target asked for.
        target: String,
        /// Why it cannot be used, and which targets can.
        msg: String,
    },
    /// A model name that is not known.
    #[error("unknown model `{0}`: expected one of {models}", models = crate::MODEL_NAMES.join(", "))]
    UnknownModel(String),
    /// Bad options (epochs 0, unknown augmentation, ...).
    #[error("{0}")]
    Options(String),
    /// A checkpoint whose architecture does not match what a learned model was trained on.
    #[error("{path}: {msg}")]
    Mismatch {
        /// The checkpoint.
        path: PathBuf,
        /// What differs.
        msg: String,
    },
    /// A saved learned model that cannot be read.
    #[error("{path}: {msg}")]
    Saved {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An error from the zoo crate (catalog, checkpoints).
    #[error(transparent)]
    ZooCrate(#[from] weightspace_zoo::Error),
    /// An error from the io crate.
    #[error(transparent)]
    Io(#[from] weightspace_io::Error),
    /// A plain I/O error with the file it concerns.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    /// True when the error is about the user's input (exit code 2), not a runtime failure.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Zoo { .. }
            | Error::Target { .. }
            | Error::UnknownModel(_)
            | Error::Options(_)
            | Error::Mismatch { .. }
            | Error::Saved { .. } => true,
            Error::ZooCrate(e) => e.is_bad_input(),
            Error::Io(_) => true,
            Error::File { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
