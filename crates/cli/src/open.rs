//! How the commands that read checkpoints open them (`--all`).

use std::path::Path;

use weightspace_io::{Checkpoint, OpenOptions};

/// Options for opening checkpoints, flattened into each command that reads them.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct OpenArgs {
    /// Every tensor the file stores, under its stored name and layout. By default an ONNX model
    /// shows its weights only — no integer shape plumbing or scalar constants — and tensors its
    /// exporter left unnamed (`onnx::MatMul_N`) take the name of the module reading them, a
    /// MatMul weight transposed to the Linear layout `[out, in]`. Other formats are unchanged.
    #[arg(long)]
    pub all: bool,
}

impl OpenArgs {
    /// The library's options.
    pub fn options(self) -> OpenOptions {
        OpenOptions { all: self.all }
    }

    /// Opens `path` with these options.
    pub fn open(self, path: &Path) -> weightspace_io::Result<Checkpoint> {
        Checkpoint::open_with(path, self.options())
    }
}
