//! Exit codes: 0 ok, 1 runtime failure, 2 bad input or usage.

use weightspace_io::ErrorKind;

/// A problem with what the user asked for (arguments, config, input files): exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Returns an `anyhow` error that exits with code 2.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// `--max-shard-size SIZE` in bytes (`None` when not given); a bad size is bad input.
pub fn shard_size(arg: Option<&str>) -> anyhow::Result<Option<u64>> {
    arg.map(|s| {
        weightspace_io::parse_size(s).ok_or_else(|| {
            bad_input(format!(
                "--max-shard-size {s}: expected a size like 5GB, 500MB or 2GiB"
            ))
        })
    })
    .transpose()
}

/// The file a single-output command writes: `model.safetensors` inside `out` when it is a
/// folder, else `out` itself.
pub fn output_file(out: &std::path::Path) -> std::path::PathBuf {
    if out.is_dir() {
        out.join("model.safetensors")
    } else {
        out.to_path_buf()
    }
}

/// The exit code for an error: 2 for bad input (unreadable, invalid or hostile files, wrong
/// arguments or configs), 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.downcast_ref::<BadInput>().is_some() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<weightspace_io::Error>() {
            return match &e.kind {
                ErrorKind::Io(io) => match io.kind() {
                    std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::IsADirectory
                    | std::io::ErrorKind::NotADirectory => 2,
                    _ => 1,
                },
                _ => 2,
            };
        }
    }
    1
}
