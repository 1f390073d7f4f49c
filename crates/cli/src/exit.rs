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

/// The output path of a command that writes: `-o/--output`, or the older positional form, kept
/// for one release with a deprecation warning on stderr. Both or neither is a usage error.
pub fn output_path(
    cmd: &str,
    option: Option<std::path::PathBuf>,
    positional: Option<std::path::PathBuf>,
) -> anyhow::Result<std::path::PathBuf> {
    match (option, positional) {
        (Some(o), None) => Ok(o),
        (None, Some(p)) => {
            eprintln!(
                "warning: `weightspace {cmd} … OUTPUT` (positional) is deprecated and goes in the \
                 next release: write `-o {}`",
                p.display()
            );
            Ok(p)
        }
        (Some(_), Some(p)) => Err(bad_input(format!(
            "two outputs: -o and the positional {}; give only -o",
            p.display()
        ))),
        (None, None) => Err(bad_input(format!(
            "`weightspace {cmd}` needs an output: -o PATH"
        ))),
    }
}

/// Checks that writing safetensors to `out` is what the user meant: not one of the `inputs`
/// (a failed or partial read of a file being replaced would lose it), not an existing file
/// unless `overwrite`, and not a name whose extension says another format.
pub fn check_safetensors_output(
    out: &std::path::Path,
    inputs: &[&std::path::Path],
    overwrite: bool,
) -> anyhow::Result<()> {
    let canon = |p: &std::path::Path| -> Option<std::path::PathBuf> {
        if let Ok(c) = std::fs::canonicalize(p) {
            return Some(c);
        }
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
    };
    let target = canon(out);
    for input in inputs {
        let same = |p: &std::path::Path| canon(p).is_some() && canon(p) == target;
        // A folder input is read through the files in it.
        let hit = if input.is_dir() {
            std::fs::read_dir(input)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| same(&e.path()))
        } else {
            same(input)
        };
        if hit {
            return Err(bad_input(format!(
                "refusing to write {}: it is an input of this command (write elsewhere, then move it)",
                out.display()
            )));
        }
    }
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if let Some(ext) = ext.as_deref()
        && matches!(
            ext,
            "bin" | "pt" | "pth" | "ckpt" | "gguf" | "onnx" | "npy" | "npz" | "h5" | "pkl" | "json"
        )
    {
        return Err(bad_input(format!(
            "{}: this command writes safetensors, but the name ends in .{ext}; use a .safetensors name or a folder",
            out.display()
        )));
    }
    if !overwrite {
        let index = out.with_extension("safetensors.index.json");
        for p in [out, index.as_path()] {
            if p.exists() {
                return Err(bad_input(format!(
                    "{} exists; pass --overwrite to replace it",
                    p.display()
                )));
            }
        }
    }
    Ok(())
}

/// clap value parser for a float dtype in any common spelling (see `DType::parse_float`).
pub fn float_dtype(s: &str) -> Result<weightspace_io::DType, String> {
    weightspace_io::DType::parse_float(s).ok_or_else(|| {
        format!("unknown float dtype {s:?}: expected f32/float32/float, f16/float16/half, bf16/bfloat16 or f64/float64/double")
    })
}

/// The error's message with its causes, each said once: a cause whose text the message already
/// holds (an io error that the file error quotes) is not repeated.
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The models named by `paths` as `similarity` finds them: files as given, a folder with an index
/// or one shard set as one model, other folders searched (see `weightspace_analyze::discover`).
pub fn model_paths(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let found = weightspace_analyze::discover::discover(paths)?;
    if found.is_empty() {
        return Err(bad_input(format!(
            "no model files found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(found)
}

/// A library error that knows whether the user's input caused it.
pub trait InputError: std::error::Error + Send + Sync + 'static {
    /// True when the input (arguments, config, files) is at fault: exit code 2.
    fn is_bad_input(&self) -> bool;
}

impl InputError for weightspace_merge::Error {
    fn is_bad_input(&self) -> bool {
        weightspace_merge::Error::is_bad_input(self)
    }
}

impl InputError for weightspace_zoo::Error {
    fn is_bad_input(&self) -> bool {
        weightspace_zoo::Error::is_bad_input(self)
    }
}

impl InputError for weightspace_learn::Error {
    fn is_bad_input(&self) -> bool {
        weightspace_learn::Error::is_bad_input(self)
    }
}

/// Lifts a library error into the CLI's: bad input exits 2, anything else 1.
pub fn lift<E: InputError>(e: E) -> anyhow::Error {
    if e.is_bad_input() {
        bad_input(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}
