//! `weightspace similarity`: cosine, relative L2 and share of changed weights, per layer and
//! overall, for every pair of models.

use std::path::PathBuf;

use weightspace_analyze::similarity::{self, SimilarityOptions};

use crate::lineage::open_models;
use crate::{exit, fmt, progress};

/// Per tensor and overall (over the tensors both share, same name and shape): cosine
/// similarity, relative L2 distance ‖a − b‖/‖a‖, and the share of weights with
/// |a − b| > atol + rtol·|b|. Similarity after alignment (permutation symmetries undone) is not
/// available yet.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Two or more models (files, model directories or directories to search).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON: {"models":[…],"pairs":[{"a","b","cosine","rel_l2","changed",…,"tensors":[{"name","numel","cosine","rel_l2","changed"}]}],"cosine_matrix":[[…]],"rel_l2_matrix":[[…]]}.
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
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    if !(a.rtol >= 0.0 && a.atol >= 0.0) {
        return Err(exit::bad_input("--rtol and --atol must be >= 0"));
    }
    let models = open_models(&a.paths)?;
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
    let rep = similarity::similarity(&models, &opts, &|| pb.inc(1))?;
    pb.finish_and_clear();
    if a.json {
        return fmt::print_json(&rep);
    }
    let body: Vec<Vec<String>> = rep
        .pairs
        .iter()
        .map(|p| {
            vec![
                p.a.clone(),
                p.b.clone(),
                fmt::num(Some(p.cosine)),
                fmt::num(Some(p.rel_l2)),
                format!("{:.2}%", p.changed * 100.0),
                p.tensors.len().to_string(),
                (p.only_in_a.len() + p.only_in_b.len()).to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        fmt::table(
            &[
                "a", "b", "cosine", "rel_l2", "changed", "shared", "unshared"
            ],
            &body
        )
    );
    if a.tensors {
        for p in &rep.pairs {
            println!("\n{} vs {}", p.a, p.b);
            let rows: Vec<Vec<String>> = p
                .tensors
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        fmt::count(t.numel),
                        fmt::num(Some(t.cosine)),
                        fmt::num(Some(t.rel_l2)),
                        format!("{:.2}%", t.changed * 100.0),
                    ]
                })
                .collect();
            print!(
                "{}",
                fmt::table(&["tensor", "numel", "cosine", "rel_l2", "changed"], &rows)
            );
        }
    }
    Ok(())
}
