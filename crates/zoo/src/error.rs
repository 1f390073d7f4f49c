//! The error type of the zoo crate.

use std::path::PathBuf;

/// Anything that can go wrong building, training or reading a zoo.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config is invalid; `key` names the offending key (e.g. `models[1].lr`).
    #[error("config key `{key}`: {msg}")]
    Config {
        /// Dotted path of the key, e.g. `models[0].optimizer`.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// The config is not valid TOML.
    #[error("config is not valid TOML: {0}")]
    Toml(String),
    /// A dataset file is missing or malformed.
    #[error("dataset {path}: {msg}")]
    Data {
        /// The file (or folder) read.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] weightspace_io::Error),
    /// A checkpoint does not fit the architecture it is loaded into.
    #[error("checkpoint {path}: {msg}")]
    Mismatch {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        msg: String,
    },
    /// Writing the catalog (Parquet/Arrow) failed.
    #[error("catalog {path}: {msg}")]
    Catalog {
        /// The catalog file.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
    /// A catalog read from disk that cannot be used: the problem names the column, row or
    /// file.
    #[error("catalog {path}: {problem}")]
    BadCatalog {
        /// The catalog file.
        path: PathBuf,
        /// What is wrong.
        problem: crate::catalog::CatalogProblem,
    },
    /// The output folder holds something that does not match this run.
    #[error("{path}: {msg}")]
    OutputDir {
        /// The output folder.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl Error {
    /// A config error naming `key`.
    pub fn config(key: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Config {
            key: key.into(),
            msg: msg.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A data error on `path`.
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// True when the error is the user's input (config, data files, output folder) rather
    /// than a runtime failure.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Config { .. }
            | Error::Toml(_)
            | Error::Data { .. }
            | Error::Mismatch { .. }
            | Error::BadCatalog { .. }
            | Error::OutputDir { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            Error::Checkpoint(_) | Error::Catalog { .. } => false,
        }
    }
}

/// Result with the zoo [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
