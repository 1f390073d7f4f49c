//! `weightspace similarity`: cosine, relative L2 and share of changed weights, per layer and
//! overall, for every pair of models.

use std::path::PathBuf;

use weightspace_analyze::similarity::{
    self, AlignedSimilarity, NamedValues, PairSimilarity, SimilarityOptions,
};
use weightspace_symmetry::{MatchOptions, Weights, align};

use crate::lineage::open_models;
use crate::spec::{load, load_weights, sym_err};
use crate::{exit, fmt, progress};

/// How to align B to A before comparing again.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignMethod {
    /// Git Re-Basin weight matching over the symmetry groups of A's spec (no data needed).
    Weight,
}

/// Per tensor and overall (over the floating-point parameters both share, same name and
/// shape; integer buffers such as BERT's `position_ids` and BatchNorm running statistics are
/// left out and listed, before and after alignment alike): cosine similarity, relative L2 distance ‖a − b‖/‖a‖, and the share of weights with
/// |a − b| > atol + rtol·|b|. With `--align weight`, the same metrics again after B's hidden
/// units were permuted onto A's (Git Re-Basin weight matching over the symmetry groups the spec
/// derives from names, shapes and a `config.json`, or `--spec FILE`): a permuted copy of a model
/// is dissimilar before and identical after.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace similarity a.safetensors b.safetensors
  weightspace similarity bert-a/ bert-b/ --align weight --tensors
  weightspace similarity checkpoints/ --json")]
pub struct Args {
    /// Two or more models (files, model directories or directories to search).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON: {"models":[…],"pairs":[{"a","b","cosine","rel_l2","changed",…,"tensors":[{"name","numel","cosine","rel_l2","changed"}],"excluded":[{"name","reason"}],"aligned":{…}}],"cosine_matrix":[[…]],"rel_l2_matrix":[[…]]}.
    #[arg(long)]
    pub json: bool,
    /// Relative tolerance for "changed".
    #[arg(long, default_value_t = 1e-5)]
    pub rtol: f64,
    /// Absolute tolerance for "changed".
    #[arg(long, default_value_t = 1e-8)]
    pub atol: f64,
    /// Also print every tensor of every pair.
    #[arg(long)]
    pub tensors: bool,
    /// Also compare after aligning B to A (adds "aligned":{"method","cosine","rel_l2","changed","tensors"} to each pair).
    #[arg(long, value_enum)]
    pub align: Option<AlignMethod>,
    /// TOML spec file for the alignment (see `weightspace spec --help`).
    #[arg(long, value_name = "FILE", requires = "align")]
    pub spec: Option<PathBuf>,
    /// Seed of the alignment's random group order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// The float tensors of `w` as [`NamedValues`].
fn named(w: &Weights) -> Vec<NamedValues<'_>> {
    w.iter()
        .filter(|(_, t)| t.is_float())
        .map(|(name, t)| NamedValues {
            name,
            shape: &t.shape,
            values: &t.data,
        })
        .collect()
}

/// Aligns B to A (weight matching over A's spec) and compares again.
fn aligned_pair(
    p: &PairSimilarity,
    paths: &[PathBuf],
    (i, j): (usize, usize),
    a: &Args,
) -> anyhow::Result<AlignedSimilarity> {
    let (wa, spec, _) = load(&paths[i], a.spec.as_deref(), &a.open)?;
    let (wb, _) = load_weights(&paths[j], &a.open)?;
    wa.check_compatible(&wb)
        .map_err(|e| exit::bad_input(format!("cannot align {} to {}: {}", p.b, p.a, sym_err(e))))?;
    let opts = MatchOptions {
        seed: a.seed,
        ..Default::default()
    };
    let (wb, _) = align(&spec, &wa, &wb, &opts).map_err(sym_err)?;
    let opts = SimilarityOptions {
        rtol: a.rtol,
        atol: a.atol,
    };
    let q = similarity::compare_values(&p.a, &named(&wa), &p.b, &named(&wb), &opts);
    Ok(AlignedSimilarity::from_pair("weight", q))
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    if !(a.rtol >= 0.0 && a.atol >= 0.0) {
        return Err(exit::bad_input("--rtol and --atol must be >= 0"));
    }
    let models = open_models(&a.paths, &a.open)?;
    if models.len() < 2 {
        return Err(exit::bad_input(format!(
            "similarity needs at least two models, found {}",
            models.len()
        )));
    }
    let opts = SimilarityOptions {
        rtol: a.rtol,
        atol: a.atol,
    };
    let k = models.len() as u64;
    let pb = progress::bar(k * (k - 1) / 2, "similarity");
    let mut rep = similarity::similarity(&models, &opts, &|| pb.inc(1))?;
    pb.finish_and_clear();
    if a.align.is_some() {
        let paths: Vec<PathBuf> = models
            .iter()
            .map(|(_, ck)| ck.path().to_path_buf())
            .collect();
        let k = paths.len();
        let ij = (0..k).flat_map(|i| (i + 1..k).map(move |j| (i, j)));
        let pb = progress::bar(rep.pairs.len() as u64, "align");
        for (p, ij) in rep.pairs.iter_mut().zip(ij) {
            p.aligned = Some(aligned_pair(p, &paths, ij, &a)?);
            pb.inc(1);
        }
        pb.finish_and_clear();
    }
    if a.json {
        return fmt::print_json(&rep);
    }
    let body: Vec<Vec<String>> = rep
        .pairs
        .iter()
        .map(|p| {
            let mut row = vec![
                p.a.clone(),
                p.b.clone(),
                fmt::num(Some(p.cosine)),
                fmt::num(Some(p.rel_l2)),
                format!("{:.2}%", p.changed * 100.0),
            ];
            if let Some(q) = &p.aligned {
                row.push(fmt::num(Some(q.cosine)));
                row.push(fmt::num(Some(q.rel_l2)));
                row.push(format!("{:.2}%", q.changed * 100.0));
            }
            row.push(p.tensors.len().to_string());
            row.push((p.only_in_a.len() + p.only_in_b.len()).to_string());
            row
        })
        .collect();
    let mut head = vec!["a", "b", "cosine", "rel_l2", "changed"];
    if a.align.is_some() {
        head.extend(["aligned_cosine", "aligned_rel_l2", "aligned_changed"]);
    }
    head.extend(["shared", "unshared"]);
    print!("{}", fmt::table(&head, &body));
    let mut left_out: Vec<&similarity::ExcludedTensor> = Vec::new();
    for e in rep.pairs.iter().flat_map(|p| &p.excluded) {
        if !left_out.iter().any(|x| x.name == e.name) {
            left_out.push(e);
        }
    }
    if !left_out.is_empty() {
        println!(
            "left out of every number above ({} tensors, not parameters):",
            left_out.len()
        );
        for e in &left_out {
            println!("  {}: {}", e.name, e.reason);
        }
    }
    if a.tensors {
        for p in &rep.pairs {
            println!("\n{} vs {}", p.a, p.b);
            let rows: Vec<Vec<String>> = p
                .tensors
                .iter()
                .map(|t| {
                    let mut row = vec![
                        t.name.clone(),
                        fmt::count(t.numel),
                        fmt::num(Some(t.cosine)),
                        fmt::num(Some(t.rel_l2)),
                        format!("{:.2}%", t.changed * 100.0),
                    ];
                    if let Some(q) = &p.aligned {
                        let u = q.tensors.iter().find(|u| u.name == t.name);
                        row.push(fmt::num(u.map(|u| u.cosine)));
                        row.push(fmt::num(u.map(|u| u.rel_l2)));
                    }
                    row
                })
                .collect();
            let mut head = vec!["tensor", "numel", "cosine", "rel_l2", "changed"];
            if p.aligned.is_some() {
                head.extend(["aligned_cosine", "aligned_rel_l2"]);
            }
            print!("{}", fmt::table(&head, &rows));
        }
    }
    Ok(())
}
