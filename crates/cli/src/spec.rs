//! `weightspace spec`: the symmetry groups of a checkpoint, and the shared loading helpers of
//! the symmetry commands (`permute`, `canon`, `align`, `interp`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weightspace_io::Checkpoint;
use weightspace_spec::{ModelSpec, SpecError, spec_for_checkpoint};
use weightspace_symmetry::Weights;

use crate::exit::bad_input;
use crate::fmt;

/// Show the symmetry groups of a checkpoint: which (tensor, axis) slices each permutation
/// moves together, which rescalings are allowed, and which tensors are left out and why.
///
/// The spec is derived from tensor names and shapes (MLP, CNN, ResNet, BERT, GPT-2, LLaMA
/// naming); heads, activation, RoPE and tied embeddings come from a `config.json` beside the
/// weights (or in the model directory) and can be overridden with `--spec FILE.toml`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A weights file or model directory.
    pub path: PathBuf,
    /// A TOML spec file: facts (`heads = 12`, `activation = "relu"`, `rope = false`, ...)
    /// and/or `[[groups]]` described outright (`replace = true` to use only those).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Print the whole spec as JSON (family, facts, tensors, groups with members and
    /// layouts, excluded, notes).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Converts a spec error: unreadable files keep their io error (exit code by kind), anything
/// else is bad input (exit 2).
pub fn spec_err(e: SpecError) -> anyhow::Error {
    match e {
        SpecError::Io(io) => anyhow::Error::new(io),
        other => bad_input(other.to_string()),
    }
}

/// Converts a symmetry error the same way.
pub fn sym_err(e: weightspace_symmetry::Error) -> anyhow::Error {
    match e {
        weightspace_symmetry::Error::Io(io) => anyhow::Error::new(io),
        weightspace_symmetry::Error::Spec(s) => spec_err(s),
        other => bad_input(other.to_string()),
    }
}

/// Opens a checkpoint and derives its spec.
pub fn load_spec(
    path: &Path,
    spec_file: Option<&Path>,
    open: &crate::open::OpenArgs,
) -> anyhow::Result<(Checkpoint, ModelSpec)> {
    let ck = open.open(path)?;
    let spec = spec_for_checkpoint(&ck, path, spec_file).map_err(spec_err)?;
    Ok((ck, spec))
}

/// Opens a checkpoint, derives its spec and reads its tensors.
pub fn load(
    path: &Path,
    spec_file: Option<&Path>,
    open: &crate::open::OpenArgs,
) -> anyhow::Result<(Weights, ModelSpec, Checkpoint)> {
    let (ck, spec) = load_spec(path, spec_file, open)?;
    let w = Weights::from_checkpoint(&ck).map_err(sym_err)?;
    Ok((w, spec, ck))
}

/// Writes `w` as safetensors to `out` (an existing directory means `out/model.safetensors`,
/// and then a `config.json` beside the input is copied too), keeping the input's string
/// metadata (except earlier permute/align/canon provenance keys) and adding `extra`. Returns the file written.
pub fn write_output(
    w: &Weights,
    ck: &Checkpoint,
    input: &Path,
    out: &Path,
    extra: &[(&str, String)],
) -> anyhow::Result<PathBuf> {
    let file = if out.is_dir() {
        if let Some(c) = weightspace_spec::config_json_for(input) {
            let bytes = std::fs::read(&c)?;
            weightspace_io::write_atomic(&out.join("config.json"), &bytes)?;
        }
        out.join("model.safetensors")
    } else {
        out.to_path_buf()
    };
    let mut meta: BTreeMap<String, String> = ck
        .metadata()
        .iter()
        .filter(|(k, _)| {
            ![
                "weightspace.permute.",
                "weightspace.align.",
                "weightspace.canon",
            ]
            .iter()
            .any(|p| k.starts_with(p))
        })
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect();
    for (k, v) in extra {
        meta.insert(k.to_string(), v.clone());
    }
    w.write_safetensors(&file, &meta).map_err(sym_err)?;
    Ok(file)
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let (_, spec) = load_spec(&a.path, a.spec.as_deref(), &a.open)?;
    if a.json {
        return fmt::print_json(&spec);
    }
    println!("family: {:?}", spec.family);
    let f = &spec.facts;
    let mut facts = Vec::new();
    if let Some(h) = f.heads {
        facts.push(format!("heads {h}"));
    }
    if let Some(h) = f.kv_heads {
        facts.push(format!("kv_heads {h}"));
    }
    if let Some(x) = &f.activation {
        facts.push(format!("activation {x}"));
    }
    if let Some(r) = f.rope {
        facts.push(format!("rope {r}"));
    }
    if let Some(t) = f.tied_embeddings {
        facts.push(format!("tied_embeddings {t}"));
    }
    if !facts.is_empty() {
        println!(
            "facts: {} (from {})",
            facts.join(", "),
            f.sources.join(", ")
        );
    }
    println!(
        "{} groups, {} tensors, group order 10^{:.0}\n",
        spec.groups.len(),
        spec.tensors.len(),
        spec.log10_group_order()
    );
    let rows: Vec<Vec<String>> = spec
        .groups
        .iter()
        .map(|g| {
            let mut ms: Vec<String> = g
                .members
                .iter()
                .map(|m| {
                    let mut s = format!("{}:{}", m.tensor, m.axis);
                    let l = &m.layout;
                    if l.block > 1 {
                        s.push_str(&format!(" block {}", l.block));
                    }
                    if l.repeats > 1 {
                        s.push_str(&format!(" ×{} stride {}", l.repeats, l.stride));
                    }
                    if l.offset > 0 {
                        s.push_str(&format!(" @{}", l.offset));
                    }
                    s
                })
                .collect();
            if ms.len() > 4 {
                let n = ms.len();
                ms.truncate(3);
                ms.push(format!("… ({n} members)"));
            }
            vec![
                g.name.clone(),
                format!("{:?}", g.kind).to_lowercase(),
                g.size.to_string(),
                format!("{:?}", g.scaling).to_lowercase(),
                ms.join(", "),
            ]
        })
        .collect();
    print!(
        "{}",
        fmt::table(
            &["group", "kind", "size", "scaling", "members (tensor:axis)"],
            &rows
        )
    );
    if !spec.excluded.is_empty() {
        println!("\nleft out:");
        for e in &spec.excluded {
            println!("  {}: {}", e.tensor, e.reason);
        }
    }
    if !spec.notes.is_empty() {
        println!("\nnotes:");
        for n in &spec.notes {
            println!("  {n}");
        }
    }
    Ok(())
}
