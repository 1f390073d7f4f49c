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
///
/// A derived spec is trusted only when it accounts for every tensor: a tensor that no group
/// moves but that has an axis the size of a permuted group (an LSTM after a conv stack), a
/// conv-to-dense flatten whose order shapes cannot tell, or an unknown head count is listed
/// under "not proven", and the symmetry commands refuse such a spec (exit 2) until a spec file
/// settles it (`flatten = "channels_last"`, `heads = 12`, `exclude = [...]`, or
/// `replace = true` with every group written out; see README, "Spec files").
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace spec model.safetensors
  weightspace spec bert/ --json                     # config.json beside the weights gives the heads
  weightspace spec crepe.pth --spec crepe.spec.toml # settle what names and shapes cannot prove")]
pub struct Args {
    /// A weights file or model directory.
    pub path: PathBuf,
    /// A TOML spec file (README, "Spec files"): facts (`heads = 12`, `activation = "relu"`,
    /// `flatten = "channels_last"`, `rope = false`, ...), `exclude = [...]` (tensors to leave
    /// alone, vouched to read no permuted axis) and/or `[[groups]]` described outright
    /// (`replace = true` to use only those). Settles what a derived spec cannot prove.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Print the whole spec as JSON (family, facts, tensors, groups with members and
    /// layouts, excluded, notes, and `unproven`: what the symmetry commands would refuse).
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
    let spec = spec_for_checkpoint(&ck, path, spec_file).map_err(|e| match e {
        SpecError::Io(io) => anyhow::Error::new(io),
        other => bad_input(format!("{}: {other}", path.display())),
    })?;
    Ok((ck, spec))
}

/// Opens a checkpoint, derives its spec, refuses it unless it is proven (see
/// [`load_proven`]; an unknown head count refuses too) and reads its tensors.
pub fn load(
    path: &Path,
    spec_file: Option<&Path>,
    open: &crate::open::OpenArgs,
) -> anyhow::Result<(Weights, ModelSpec, Checkpoint)> {
    load_proven(path, spec_file, false, open)
}

/// Opens a checkpoint and derives its spec like [`load_spec`], then refuses (exit 2, naming
/// the file, the tensor in doubt and how to give a spec) a spec whose groups could change the
/// function: a tensor that may read a permuted axis but that no group moves, a conv-to-dense
/// flatten of unknown order, or (unless `allow_missing_heads`, the `--no-heads` flag) an
/// unknown head count. Then reads the tensors.
pub fn load_proven(
    path: &Path,
    spec_file: Option<&Path>,
    allow_missing_heads: bool,
    open: &crate::open::OpenArgs,
) -> anyhow::Result<(Weights, ModelSpec, Checkpoint)> {
    let (ck, spec) = load_spec(path, spec_file, open)?;
    spec.require_proven(allow_missing_heads)
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    let w = Weights::from_checkpoint(&ck).map_err(sym_err)?;
    Ok((w, spec, ck))
}

/// Opens a checkpoint and reads its tensors, deriving no spec: for the model that is aligned
/// *to* another, whose spec (after a shape check) is the reference's.
pub fn load_weights(
    path: &Path,
    open: &crate::open::OpenArgs,
) -> anyhow::Result<(Weights, Checkpoint)> {
    let ck = open.open(path)?;
    let w = Weights::from_checkpoint(&ck).map_err(sym_err)?;
    Ok((w, ck))
}

/// The line the symmetry commands print when `--no-heads` let a spec without head groups
/// through, or `None` when the spec has them.
pub fn heads_note(spec: &ModelSpec) -> Option<String> {
    spec.heads_missing().map(|u| {
        format!(
            "--no-heads: only the residual-stream and MLP groups were used, attention heads stay in place: {}",
            u.reason
        )
    })
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
    if spec
        .notes
        .iter()
        .any(|n| !spec.unproven.iter().any(|u| &u.reason == n))
    {
        println!("\nnotes:");
        for n in spec
            .notes
            .iter()
            .filter(|n| !spec.unproven.iter().any(|u| &u.reason == *n))
        {
            println!("  {n}");
        }
    }
    if !spec.unproven.is_empty() {
        println!(
            "\nnot proven (permute, canon, align, similarity --align and merge's align refuse this spec{}):",
            if spec
                .unproven
                .iter()
                .all(|u| u.kind == weightspace_spec::UnprovenKind::Heads)
            {
                "; permute, canon and align take it with --no-heads"
            } else {
                ""
            }
        );
        for u in &spec.unproven {
            println!("  {}: {}", u.tensor, u.reason);
        }
        println!("  {}", weightspace_spec::HOW_TO_SPEC);
    }
    Ok(())
}
