//! The crate's error type: every error names the config key, the model or the tensor it is about.

use std::path::PathBuf;

/// An error while reading a merge config, planning a merge or running it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The YAML text does not parse.
    #[error("{file}: invalid YAML: {msg}")]
    Yaml {
        /// The config file.
        file: PathBuf,
        /// What the YAML parser said (with line and column).
        msg: String,
    },
    /// A config key has a wrong or missing value.
    #[error("{file}: `{key}`: {msg}")]
    Config {
        /// The config file.
        file: PathBuf,
        /// Path of the key in the YAML document, e.g. `models[1].parameters.density`.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// A model named in the config cannot be found or used.
    #[error("`{key}`: model `{model}`: {msg}")]
    Model {
        /// Path of the key naming the model.
        key: String,
        /// The model as written in the config.
        model: String,
        /// What is wrong.
        msg: String,
    },
    /// Input tensors that cannot be merged (missing, incompatible shapes, ...).
    #[error("tensor `{tensor}`: {msg}")]
    Tensor {
        /// The tensor name.
        tensor: String,
        /// What is wrong, naming the models involved.
        msg: String,
    },
    /// Bad command arguments (for callers without a config file: prune, taskvec).
    #[error("{0}")]
    Usage(String),
    /// The output location cannot be used (exists and is not empty, ...).
    #[error("{path}: {msg}")]
    Output {
        /// The output path.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A LoRA adapter's `adapter_config.json` is unusable (invalid, or not a plain LoRA).
    #[error("{path}: {msg}")]
    Adapter {
        /// The adapter config file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Reading or writing weights failed.
    #[error(transparent)]
    Io(#[from] weightspace_io::Error),
    /// A file operation outside the weights (config, tokenizer files, renames) failed.
    #[error("{path}: {source}")]
    Fs {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A method failed at run time on a tensor (e.g. multislerp on exactly opposite vectors).
    #[error("tensor `{tensor}`: {method}: {msg}")]
    Compute {
        /// The tensor.
        tensor: String,
        /// The merge method.
        method: String,
        /// What happened.
        msg: String,
    },
}

impl Error {
    /// True when the error is about the user's input (config, models, arguments), which the CLI
    /// reports with exit code 2; false for run-time failures (disk full, ...).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Yaml { .. }
            | Error::Config { .. }
            | Error::Model { .. }
            | Error::Tensor { .. }
            | Error::Usage(_)
            | Error::Adapter { .. }
            | Error::Output { .. } => true,
            Error::Io(e) => !matches!(e.kind, weightspace_io::ErrorKind::Io(_)),
            Error::Fs { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            Error::Compute { .. } => false,
        }
    }

    pub(crate) fn fs(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Fs {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
