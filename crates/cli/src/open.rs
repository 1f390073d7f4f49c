//! How the commands that read checkpoints open them: `--all`, and which tensors under which
//! names (`--key`, `--include`, `--exclude`, `--strip-prefix`, `--rename`).

use std::path::Path;

use weightspace_io::{Checkpoint, OpenOptions};

/// Options for opening checkpoints, flattened into each command that reads them. They apply to
/// every model the command reads.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OpenArgs {
    /// Every tensor the file stores, under its stored name and layout. By default an ONNX model
    /// shows its weights only — no integer shape plumbing or scalar constants — and tensors its
    /// exporter left unnamed (`onnx::MatMul_N`) take the name of the module reading them, a
    /// MatMul weight transposed to the Linear layout `[out, in]`; and a PyTorch checkpoint that
    /// wraps its state dict with optimizer state and training scalars (`{"model": ...,
    /// "optimizer": ..., "epoch": 3}`) shows the model's parameters only, without the `model.`
    /// prefix. Other formats are unchanged.
    #[arg(long)]
    pub all: bool,
    /// For a PyTorch checkpoint that wraps its state dict (`inspect` lists its top-level keys):
    /// only the tensors under this key, with the `NAME.` prefix removed — `--key optimizer` for
    /// its optimizer state, or the model when two state dicts make the default pick ambiguous.
    /// Checkpoints that do not wrap theirs (a plain state dict, safetensors, ONNX) are read
    /// unchanged, so one --key serves a diff of a training checkpoint with a plain state dict.
    #[arg(long, value_name = "NAME")]
    pub key: Option<String>,
    /// Only tensors whose name matches this glob (`*` also matches dots; `?`, `[abc]`).
    /// Repeatable: a tensor matching any is kept. Matched against the name after --strip-prefix
    /// and --rename and the one before; either counts.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out tensors whose name matches this glob (matched like --include). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Remove this prefix from tensor names that start with it (the first that matches, once),
    /// e.g. `model.0.auto_model.` to line an export up with its source checkpoint. Repeatable;
    /// names without it are unchanged.
    #[arg(long, value_name = "PREFIX")]
    pub strip_prefix: Vec<String>,
    /// Rename tensors whose name starts with the literal prefix FROM to start with TO instead
    /// (no wildcards; TO may be empty). Repeatable: the first FROM that matches applies, after
    /// --strip-prefix. Two tensors ending up with one name is an error naming both.
    #[arg(long, value_name = "FROM=TO", value_parser = parse_rename)]
    pub rename: Vec<(String, String)>,
}

fn parse_rename(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((from, to)) if !from.is_empty() => Ok((from.to_string(), to.to_string())),
        _ => Err(format!(
            "`{s}`: expected FROM=TO, a non-empty name prefix and its replacement"
        )),
    }
}

impl OpenArgs {
    /// The library's options.
    pub fn options(&self) -> OpenOptions {
        OpenOptions {
            all: self.all,
            key: self.key.clone(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            strip_prefix: self.strip_prefix.clone(),
            rename: self.rename.clone(),
        }
    }

    /// Opens `path` with these options.
    pub fn open(&self, path: &Path) -> weightspace_io::Result<Checkpoint> {
        Checkpoint::open_with(path, self.options())
    }
}
