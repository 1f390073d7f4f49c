//! `weightspace zoo …`: train, list, evaluate and export model zoos.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use weightspace_zoo as zoo;

use crate::exit::bad_input;
use crate::exit::lift;
use crate::progress;

/// Populations of small trained networks.
#[derive(Subcommand, Debug)]
pub enum ZooCmd {
    /// Train a zoo from a TOML config into DIR (zoo.toml, models/<id>/epoch_<k>.safetensors,
    /// catalog.parquet). Same config and seed give the same bits whatever the thread count
    /// (RAYON_NUM_THREADS).
    #[command(after_help = "Examples:
  weightspace zoo train zoos/tiny.toml -o tiny-zoo
  weightspace zoo train zoos/digits-cnn.toml -o cnn-zoo --shard 0/4
  weightspace zoo train zoos/digits-cnn.toml -o cnn-zoo --resume")]
    Train {
        /// The zoo config (see zoos/tiny.toml and the README).
        config: PathBuf,
        /// Output folder.
        #[arg(short, long = "output", visible_alias = "out", value_name = "DIR")]
        out: PathBuf,
        /// Train only shard i of N (e.g. 0/4): whole fine-tune trees per shard. Shards may run
        /// at once into the same folder; each rebuilds the catalog from all shards' ledgers.
        #[arg(long, value_name = "i/N")]
        shard: Option<String>,
        /// Continue an interrupted run in an existing folder (finished models are kept).
        #[arg(long)]
        resume: bool,
        /// Print the run summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a zoo's models (last state of each) and summarise its accuracy distribution. Works
    /// on zoos from other tools too (catalog.parquet with model_id and file columns).
    #[command(after_help = "Examples:
  weightspace zoo ls tiny-zoo
  weightspace zoo ls tiny-zoo --json")]
    Ls {
        /// Zoo folder.
        dir: PathBuf,
        /// Print every catalog row as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-evaluate every checkpoint from its file and check it against the catalog (needs the
    /// zoo.toml that made the zoo).
    #[command(after_help = "Examples:
  weightspace zoo eval tiny-zoo
  weightspace zoo eval tiny-zoo --json")]
    Eval {
        /// Zoo folder.
        dir: PathBuf,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export the zoo as one .npz: `weights` [states, params] plus one array per catalog
    /// column (`d = np.load(F); d["weights"], d["test_accuracy"]`). Checkpoints from other
    /// tools contribute every tensor but BatchNorm buffers, in file order.
    #[command(after_help = "Examples:
  weightspace zoo export tiny-zoo -o tiny.npz      # then np.load(\"tiny.npz\")[\"weights\"]
  weightspace zoo export other-tool-zoo/ -o other.npz")]
    Export {
        /// Zoo folder.
        dir: PathBuf,
        /// Output .npz file.
        #[arg(short, long = "output", visible_alias = "npz", value_name = "FILE")]
        npz: PathBuf,
    },
}

fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let err = || {
        bad_input(format!(
            "--shard {s}: expected i/N with 0 ≤ i < N, e.g. 0/4"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(err)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| err())?,
        n.trim().parse().map_err(|_| err())?,
    );
    if n == 0 || i >= n {
        return Err(err());
    }
    Ok((i, n))
}

/// Runs a `zoo` subcommand.
pub fn run(cmd: ZooCmd) -> anyhow::Result<()> {
    match cmd {
        ZooCmd::Train {
            config,
            out,
            shard,
            resume,
            json,
        } => {
            let cfg = zoo::ZooConfig::from_file(&config)
                .map_err(lift)
                .with_context(|| format!("config {}", config.display()))?;
            let opts = zoo::TrainOptions {
                shard: shard.as_deref().map(parse_shard).transpose()?,
                resume,
            };
            let bar = progress::bar(0, "training");
            let summary = zoo::train(&cfg, &out, &opts, &|ev| match ev {
                zoo::Event::Start { todo, .. } => bar.set_length(*todo as u64),
                zoo::Event::ModelDone { id } => {
                    bar.set_prefix(id.clone());
                    bar.inc(1);
                }
            })
            .map_err(lift)?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "trained {} models ({} already done) in {:.1} s: {} model-steps, {:.2} GFLOP/s; catalog {} rows -> {}",
                    summary.models_trained,
                    summary.models_skipped,
                    summary.seconds,
                    summary.model_steps,
                    summary.train_flops / summary.seconds.max(1e-9) / 1e9,
                    summary.catalog_rows,
                    out.join("catalog.parquet").display()
                );
                println!("{}", summary.catalog);
            }
            Ok(())
        }
        ZooCmd::Ls { dir, json } => {
            let rows = zoo::export::read_catalog(&dir).map_err(lift)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            let mut last: std::collections::BTreeMap<
                String,
                &serde_json::Map<String, serde_json::Value>,
            > = Default::default();
            let mut order = Vec::new();
            for r in &rows {
                let id = zoo::Catalog::model_id(r).to_string();
                if !last.contains_key(&id) {
                    order.push(id.clone());
                }
                last.insert(id, r);
            }
            println!(
                "{:<16} {:<16} {:>5} {:>6} {:>9} {:>9} {:>8}  file",
                "model_id", "parent_id", "epoch", "arch", "train_acc", "test_acc", "params"
            );
            let f = |v: &serde_json::Value| v.as_f64().map_or("nan".into(), |x| format!("{x:.4}"));
            let null = serde_json::Value::Null;
            for id in &order {
                let r = last[id];
                let g = |k: &str| r.get(k).unwrap_or(&null);
                let text = |k: &str| match g(k) {
                    serde_json::Value::Null => "-".to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                println!(
                    "{:<16} {:<16} {:>5} {:>6} {:>9} {:>9} {:>8}  {}",
                    id,
                    text("parent_id"),
                    zoo::Catalog::epoch(r),
                    text("arch"),
                    f(g("train_accuracy")),
                    f(g("test_accuracy")),
                    text("num_params"),
                    zoo::Catalog::file(r)
                );
            }
            println!("{}", zoo::summary(&rows));
            Ok(())
        }
        ZooCmd::Eval { dir, json } => {
            let res = zoo::export::eval_zoo(&dir).map_err(lift)?;
            let bad = res.iter().filter(|r| !r.matches).count();
            if json {
                println!("{}", serde_json::to_string_pretty(&res)?);
            } else {
                println!(
                    "{:<16} {:>5} {:>10} {:>10} {:>9}",
                    "model_id", "epoch", "test_loss", "test_acc", "catalog"
                );
                for r in &res {
                    println!(
                        "{:<16} {:>5} {:>10.4} {:>10.4} {:>9}",
                        r.model_id,
                        r.epoch,
                        r.test_loss,
                        r.test_accuracy,
                        if r.matches { "ok" } else { "MISMATCH" }
                    );
                }
                println!(
                    "{} states re-evaluated, {} differ from the catalog",
                    res.len(),
                    bad
                );
            }
            if bad > 0 {
                anyhow::bail!("{bad} model states differ from the catalog");
            }
            Ok(())
        }
        ZooCmd::Export { dir, npz } => {
            let s = zoo::export::export_npz(&dir, &npz).map_err(lift)?;
            println!(
                "wrote {}: weights [{}, {}] and {} catalog columns",
                npz.display(),
                s.states,
                s.max_params,
                s.columns.len()
            );
            Ok(())
        }
    }
}
