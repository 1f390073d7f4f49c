//! `weightspace quickstart`: the README's main job — a guided tour on data it makes itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weightspace_io::{Checkpoint, ConvertOptions, DType, convert, write_f32_safetensors};

use crate::{
    align, diff, hash, inspect, interp, learn, lineage, merge, permute, report, similarity,
    spectral, stats, zoo,
};

/// The quickstart's zoo config, shipped as `zoos/tiny.toml`.
const TINY_ZOO: &str = include_str!("../../../zoos/tiny.toml");

/// A guided tour: writes a small set of demo checkpoints to a folder and walks through
/// inspect, stats, diff, hash and convert on them; trains a small zoo on the bundled digits and
/// merges, permutes, aligns and interpolates its nets; then analyses them from the weights
/// alone (spectral metrics, similarity after alignment, the fine-tune tree, an HTML report).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace quickstart                  # writes ./quickstart-out
  weightspace quickstart -o /tmp/tour --seed 1")]
pub struct Args {
    /// Folder for everything the tour writes (created if missing).
    #[arg(
        short,
        long = "output",
        visible_alias = "out",
        value_name = "DIR",
        default_value = "quickstart-out"
    )]
    pub out: PathBuf,
    /// Seed for the demo weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// SplitMix64: a tiny deterministic generator for the demo weights.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Approximately standard normal (sum of 12 uniforms minus 6).
    fn normal(&mut self) -> f32 {
        (0..12)
            .map(|_| (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
            .sum::<f32>()
            - 6.0
    }
}

/// A He-initialised 64-32-10 MLP in PyTorch naming (`layers.k.weight` is [out, in]).
fn demo_mlp(rng: &mut SplitMix) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let widths = [64usize, 32, 10];
    let mut out = Vec::new();
    for (k, w) in widths.windows(2).enumerate() {
        let (fan_in, fan_out) = (w[0], w[1]);
        let scale = (2.0 / fan_in as f32).sqrt();
        let weight = (0..fan_in * fan_out)
            .map(|_| rng.normal() * scale)
            .collect();
        out.push((format!("layers.{k}.weight"), vec![fan_out, fan_in], weight));
        out.push((
            format!("layers.{k}.bias"),
            vec![fan_out],
            vec![0.0; fan_out],
        ));
    }
    out
}

fn section(title: &str, command: &str) {
    println!("\n== {title}\n$ {command}");
}

/// Runs the tour.
pub fn run(a: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out)?;
    let out = &a.out;
    let mut rng = SplitMix(a.seed);
    let base = demo_mlp(&mut rng);
    // A "fine-tuned" copy: the first layer frozen, the head nudged.
    let mut tuned = base.clone();
    for (name, _, v) in tuned.iter_mut() {
        if name.starts_with("layers.1.") {
            v.iter_mut().for_each(|x| *x += 0.05 * rng.normal());
        }
    }
    let meta = |role: &str| {
        BTreeMap::from([
            ("role".to_string(), role.to_string()),
            ("seed".to_string(), a.seed.to_string()),
        ])
    };
    let base_p = out.join("base.safetensors");
    let tuned_p = out.join("finetuned.safetensors");
    write_f32_safetensors(&base_p, &base, &meta("base"))?;
    write_f32_safetensors(&tuned_p, &tuned, &meta("finetuned"))?;
    let half_p = out.join("base-f16.safetensors");
    convert(
        &Checkpoint::open(&base_p)?,
        &half_p,
        &ConvertOptions {
            dtype: Some(DType::F16),
            max_shard_bytes: None,
        },
    )?;
    let shard_dir = out.join("sharded");
    std::fs::create_dir_all(&shard_dir)?;
    convert(
        &Checkpoint::open(&base_p)?,
        &shard_dir.join("model.safetensors"),
        &ConvertOptions {
            dtype: None,
            max_shard_bytes: Some(4_096),
        },
    )?;
    println!(
        "weightspace quickstart: demo checkpoints written to {}",
        out.display()
    );
    println!(
        "  base.safetensors       a 64-32-10 MLP (He init, seed {})",
        a.seed
    );
    println!("  finetuned.safetensors  the same net with its head nudged");
    println!("  base-f16.safetensors   base converted to f16");
    println!("  sharded/               base sharded at 4 kB with an HF index");

    let d = out.display();
    section(
        "1. inspect a sharded checkpoint (headers only)",
        &format!("weightspace inspect {d}/sharded"),
    );
    inspect::run(inspect::Args {
        paths: vec![shard_dir.clone()],
        json: false,
        open: Default::default(),
    })?;
    section(
        "2. per-tensor statistics",
        &format!("weightspace stats {d}/base.safetensors"),
    );
    stats::run(stats::Args {
        path: base_p.clone(),
        json: false,
        csv: false,
        parquet: None,
        open: Default::default(),
    })?;
    section(
        "3. what fine-tuning changed",
        &format!("weightspace diff {d}/base.safetensors {d}/finetuned.safetensors"),
    );
    diff::run(diff::Args {
        a: base_p.clone(),
        b: tuned_p.clone(),
        json: false,
        open: Default::default(),
    })?;
    section(
        "4. content hashes and duplicated tensors",
        &format!("weightspace hash {d}/base.safetensors {d}/finetuned.safetensors {d}/sharded"),
    );
    hash::run(hash::Args {
        paths: vec![base_p.clone(), tuned_p.clone(), shard_dir],
        json: false,
        tensors: false,
        open: Default::default(),
    })?;
    section(
        "5. f32 vs f16: the cost of halving the bytes",
        &format!("weightspace diff {d}/base.safetensors {d}/base-f16.safetensors"),
    );
    diff::run(diff::Args {
        a: base_p,
        b: half_p,
        json: false,
        open: Default::default(),
    })?;

    // Part two: a zoo of small nets trained on the bundled digits, and what to do with it.
    let cfg = out.join("tiny.toml");
    std::fs::write(&cfg, TINY_ZOO)?;
    let zoo_dir = out.join("zoo");
    section(
        "6. train a zoo of small nets on the bundled 8x8 digits (zoos/tiny.toml)",
        &format!("weightspace zoo train {d}/tiny.toml -o {d}/zoo"),
    );
    zoo::run(zoo::ZooCmd::Train {
        config: cfg,
        out: zoo_dir.clone(),
        shard: None,
        // A second quickstart run finishes (or reuses) the zoo instead of refusing the folder.
        resume: zoo_dir.join("zoo.toml").exists(),
        json: false,
    })?;
    section(
        "7. the zoo's catalog",
        &format!("weightspace zoo ls {d}/zoo"),
    );
    zoo::run(zoo::ZooCmd::Ls {
        dir: zoo_dir.clone(),
        json: false,
    })?;

    // Two fine-tuned children of one parent: merge them onto their parent with TIES.
    let (parent, children) = fine_tune_family(&zoo_dir)?;
    let yaml = format!(
        "merge_method: ties\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 0.5, density: 0.5}}\n  - model: {}\n    parameters: {{weight: 0.5, density: 0.5}}\ndtype: float32\n",
        parent.display(),
        children[0].display(),
        children[1].display()
    );
    let merge_cfg = out.join("merge.yaml");
    std::fs::write(&merge_cfg, &yaml)?;
    section(
        "8. merge two fine-tuned siblings onto their parent (TIES, a mergekit config)",
        &format!("weightspace merge {d}/merge.yaml -o {d}/merged"),
    );
    print!("{yaml}");
    merge::run(merge::Args {
        open: Default::default(),
        config: merge_cfg,
        out_dir: Some(out.join("merged")),
        out_dir_positional: None,
        seed: 0,
        max_shard_size: "5GB".into(),
        dtype: None,
        topk_scope: "tensor".into(),
        align: None,
        align_seed: 0,
        lenient: false,
        dry_run: false,
        overwrite: true,
        json: false,
    })?;

    // Symmetry: permuting hidden units changes the weights, not the function; alignment
    // recovers the permutation.
    let permuted = out.join("parent-permuted.safetensors");
    section(
        "9. permute the parent's hidden units (same function, different weights)",
        &format!(
            "weightspace permute {} -o {d}/parent-permuted.safetensors --seed 1",
            parent.display()
        ),
    );
    permute::run(permute::Args {
        open: Default::default(),
        input: parent.clone(),
        output: Some(permuted.clone()),
        output_positional: None,
        seed: 1,
        scale: false,
        sign: false,
        spec: None,
        no_heads: false,
        json: false,
    })?;
    diff::run(diff::Args {
        a: parent.clone(),
        b: permuted.clone(),
        json: false,
        open: Default::default(),
    })?;
    // Measured, not asserted: both nets through the zoo runtime on the digits test inputs.
    let (max_diff, n, same) = interp::output_difference(&parent, &permuted)?;
    println!(
        "outputs before/after permute: max |Δ| = {max_diff:.1e} on {n} inputs (digits test split, zoo runtime); same predicted class on {same}/{n}"
    );
    let realigned = out.join("parent-realigned.safetensors");
    section(
        "10. align the permuted copy back to the parent (Git Re-Basin weight matching)",
        &format!(
            "weightspace align {} {d}/parent-permuted.safetensors -o {d}/parent-realigned.safetensors",
            parent.display()
        ),
    );
    align::run(align::Args {
        open: Default::default(),
        reference: parent.clone(),
        other: permuted.clone(),
        output: realigned.clone(),
        method: align::Method::Weight,
        data: None,
        seed: 0,
        max_iter: 100,
        spec: None,
        no_heads: false,
        json: false,
    })?;
    diff::run(diff::Args {
        a: parent.clone(),
        b: realigned,
        json: false,
        open: Default::default(),
    })?;

    // Linear mode connectivity: two nets trained from different seeds, before and after
    // weight matching.
    let (m0, m1) = (
        zoo_dir.join("models/base-0000/epoch_8.safetensors"),
        zoo_dir.join("models/base-0001/epoch_8.safetensors"),
    );
    section(
        "11. the loss barrier between two nets trained from different seeds, before and after alignment",
        &format!(
            "weightspace interp {d}/zoo/models/base-0000/epoch_8.safetensors {d}/zoo/models/base-0001/epoch_8.safetensors --steps 5 --align weight"
        ),
    );
    interp::run(interp::Args {
        open: Default::default(),
        a: m0,
        b: m1,
        data: None,
        steps: 5,
        align: Some(interp::AlignMethod::Weight),
        repair: None,
        seed: 0,
        spec: None,
        json: false,
    })?;

    // Analysis from the weights alone.
    section(
        "12. spectral metrics of a trained net (WeightWatcher's definitions)",
        &format!("weightspace spectral {}", parent.display()),
    );
    spectral::run(spectral::Args {
        open: Default::default(),
        path: parent.clone(),
        json: false,
        parquet: None,
        max_dim: None,
        flatten_conv: false,
        conv_layout: None,
        min_evals: 8,
        no_traps: false,
        seed: 0,
    })?;
    section(
        "13. similarity before and after undoing the permutation (weight matching)",
        &format!(
            "weightspace similarity {} {d}/parent-permuted.safetensors --align weight",
            parent.display()
        ),
    );
    similarity::run(similarity::Args {
        open: Default::default(),
        paths: vec![parent.clone(), permuted],
        json: false,
        rtol: 1e-5,
        atol: 1e-8,
        tensors: false,
        align: Some(similarity::AlignMethod::Weight),
        spec: None,
        seed: 0,
    })?;
    let (family, truth) = fine_tune_tree(&zoo_dir)?;
    section(
        "14. recover the fine-tune tree from the weights alone (MoTHer-style lineage)",
        &format!(
            "weightspace lineage {d}/zoo/models/base-*/epoch_8.safetensors {d}/zoo/models/ft-*/epoch_2.safetensors"
        ),
    );
    let models = lineage::open_models(&family, &Default::default())?;
    let tree = weightspace_analyze::lineage::lineage(
        &models,
        &weightspace_analyze::lineage::LineageOptions::default(),
        &|| {},
    )
    .map_err(lineage::analyze_err)?;
    lineage::print_tree(&tree);
    let right = tree
        .edges
        .iter()
        .filter(|e| truth.contains(&(e.parent.clone(), e.child.clone())))
        .count();
    println!(
        "{right} of the {} parent -> child edges in the zoo catalog recovered",
        truth.len()
    );
    section(
        "15. one self-contained HTML report: tables, ESD plots, alpha per layer, similarity, lineage",
        &format!(
            "weightspace report {d}/zoo/models/base-*/epoch_8.safetensors {d}/zoo/models/ft-*/epoch_2.safetensors -o {d}/report.html"
        ),
    );
    report::run(report::Args {
        open: Default::default(),
        paths: family,
        out: out.join("report.html"),
        max_plots: 24,
        max_dim: None,
        no_traps: false,
        conv_layout: None,
        seed: 0,
    })?;
    section(
        "16. learn on weights: predict each net's test accuracy from its weights alone",
        &format!(
            "weightspace learn bench --zoo {d}/zoo --group pop --models stats-gbm,nfn-hnp --epochs 20 --seeds 1"
        ),
    );
    println!(
        "(48 MLPs of the zoo's `pop` group, 4 states each, split by model id; Kendall tau and R2 on the test models)"
    );
    learn::run(learn::LearnCmd::Bench(learn::BenchArgs {
        common: learn::Common {
            zoo: zoo_dir.clone(),
            target: "test_acc".into(),
            states: "all".into(),
            group: Some("pop".into()),
            epochs: Some(20),
            rounds: None,
            batch_size: None,
            lr: None,
            hidden: None,
            depth: None,
            patience: None,
            input_downsample: None,
            augment: "none".into(),
            split_seed: 0,
        },
        models: vec!["stats-gbm".into(), "nfn-hnp".into()],
        seeds: 1,
        out: None,
    }))?;
    println!("\nEvery command takes --json for machines and --help for details.");
    Ok(())
}

/// The last checkpoints of every zoo model that has a parent or children (sorted by path, as a
/// shell glob lists them), and the true (parent, child) pairs among them, as path labels.
fn fine_tune_tree(zoo_dir: &Path) -> anyhow::Result<(Vec<PathBuf>, Vec<Edge>)> {
    let last = last_states(zoo_dir)?;
    let mut family: Vec<PathBuf> = Vec::new();
    let mut truth = Vec::new();
    for (id, (_, file, parent)) in &last {
        let has_children = last
            .values()
            .any(|(_, _, p)| p.as_deref() == Some(id.as_str()));
        if let Some((_, pfile, _)) = parent.as_ref().and_then(|p| last.get(p)) {
            truth.push((
                weightspace_analyze::discover::label(pfile),
                weightspace_analyze::discover::label(file),
            ));
        }
        if has_children || parent.is_some() {
            family.push(file.clone());
        }
    }
    family.sort();
    Ok((family, truth))
}

/// A (parent, child) pair of path labels.
type Edge = (String, String);

/// Zoo model id -> (epoch, file, parent id) of its last state.
type LastStates = BTreeMap<String, (i64, PathBuf, Option<String>)>;

/// Last state (highest epoch) of each zoo model.
fn last_states(zoo_dir: &Path) -> anyhow::Result<LastStates> {
    let rows = weightspace_zoo::export::read_catalog(zoo_dir)?;
    let get = |r: &serde_json::Map<String, serde_json::Value>, k: &str| {
        r.get(k).and_then(|v| v.as_str()).map(str::to_string)
    };
    let mut last = LastStates::new();
    for r in &rows {
        let (Some(id), Some(file)) = (get(r, "model_id"), get(r, "file")) else {
            continue;
        };
        let epoch = r.get("epoch").and_then(|v| v.as_i64()).unwrap_or(0);
        if last.get(&id).is_none_or(|(e, _, _)| epoch > *e) {
            last.insert(id, (epoch, zoo_dir.join(file), get(r, "parent_id")));
        }
    }
    Ok(last)
}

/// The last checkpoint of a zoo model that has at least two fine-tuned children, and the last
/// checkpoints of two of its children.
fn fine_tune_family(zoo_dir: &Path) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    let last = last_states(zoo_dir)?;
    for (id, (_, file, _)) in &last {
        let children: Vec<PathBuf> = last
            .values()
            .filter(|(_, _, p)| p.as_deref() == Some(id.as_str()))
            .map(|(_, f, _)| f.clone())
            .take(2)
            .collect();
        if children.len() == 2 {
            return Ok((file.clone(), children));
        }
    }
    anyhow::bail!("the zoo has no model with two fine-tuned children")
}
