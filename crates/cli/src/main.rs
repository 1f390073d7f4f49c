//! The `weightspace` command line: parses arguments, calls the library crates, prints results.
//! Results go to stdout (human tables, or JSON with `--json`); progress and logs to stderr.
//! Exit codes: 0 ok, 1 runtime failure, 2 bad input or usage.

mod align;
mod canon;
mod convert;
mod dedupe;
mod diff;
mod exit;
mod fmt;
mod hash;
mod inspect;
mod interp;
mod learn;
mod lineage;
mod lora;
mod merge;
mod open;
mod permute;
mod progress;
mod prune;
mod quickstart;
mod report;
mod similarity;
mod spec;
mod spectral;
mod stats;
mod taskvec;
mod zoo;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// weightspace: trained neural-network weights as a data modality.
///
/// Reads safetensors (also sharded), PyTorch (zip, legacy, TorchScript; no pickle code ever
/// runs), GGUF, npy/npz and ONNX, detected from the bytes.
#[derive(Parser, Debug)]
#[command(name = "weightspace", version, about, long_about = None)]
struct Cli {
    /// Hide progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Guided tour on demo data: the README's main job.
    Quickstart(quickstart::Args),
    /// Format, metadata and tensor list (headers only).
    Inspect(inspect::Args),
    /// Per-tensor statistics.
    Stats(stats::Args),
    /// Compare two checkpoints tensor by tensor.
    Diff(diff::Args),
    /// Content hashes and duplicated tensors.
    Hash(hash::Args),
    /// Convert any readable checkpoint to safetensors.
    Convert(convert::Args),
    /// Train, list, evaluate and export populations of small trained networks.
    #[command(subcommand)]
    Zoo(zoo::ZooCmd),
    /// Merge checkpoints from a mergekit YAML config.
    Merge(merge::Args),
    /// Prune weights by magnitude, at random, or whole rows.
    Prune(prune::Args),
    /// Extract and apply task vectors.
    Taskvec(taskvec::Args),
    /// Merge a PEFT LoRA adapter into its base, or extract one from a fine-tune (SVD).
    Lora(lora::Args),
    /// Symmetry groups of a checkpoint (which tensors each permutation moves).
    Spec(spec::Args),
    /// Apply a random symmetry: same function, different weights.
    Permute(permute::Args),
    /// Canonical form: one representative per symmetry orbit.
    Canon(canon::Args),
    /// Align one model to another (Git Re-Basin weight matching).
    Align(align::Args),
    /// Loss/accuracy along the linear path between two models, and the barrier.
    Interp(interp::Args),
    /// WeightWatcher-style spectral metrics per layer.
    Spectral(spectral::Args),
    /// Cosine, relative L2 and changed share between models.
    Similarity(similarity::Args),
    /// Recover which model was derived from which.
    Lineage(lineage::Args),
    /// Exact and near duplicate models and tensors.
    Dedupe(dedupe::Args),
    /// A self-contained HTML report with plots.
    Report(report::Args),
    /// Models whose input is weights: train, evaluate, predict, benchmark.
    #[command(subcommand)]
    Learn(learn::LearnCmd),
}

fn main() {
    // Die quietly on a closed pipe (`weightspace inspect big.gguf | head`), like other Unix tools,
    // instead of panicking in `println!`.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Negative numbers are values everywhere (`--density -0.5` is a range error, not an
    // unknown flag `-0`).
    let parsed = allow_negative_numbers(Cli::command())
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            // clap exits 2 on usage errors and 0 for --help/--version.
            e.exit();
        }
    };
    progress::set_quiet(cli.quiet);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Quickstart(a) => quickstart::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Hash(a) => hash::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Zoo(cmd) => zoo::run(cmd),
        Command::Merge(a) => merge::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Taskvec(a) => taskvec::run(a),
        Command::Lora(a) => lora::run(a),
        Command::Spec(a) => spec::run(a),
        Command::Permute(a) => permute::run(a),
        Command::Canon(a) => canon::run(a),
        Command::Align(a) => align::run(a),
        Command::Interp(a) => interp::run(a),
        Command::Spectral(a) => spectral::run(a),
        Command::Similarity(a) => similarity::run(a),
        Command::Lineage(a) => lineage::run(a),
        Command::Dedupe(a) => dedupe::run(a),
        Command::Report(a) => report::run(a),
        Command::Learn(cmd) => learn::run(cmd),
    };
    if let Err(e) = result {
        eprintln!("error: {}", exit::message(&e));
        std::process::exit(exit::exit_code(&e));
    }
}

/// `cmd` and every subcommand below it, with negative numbers accepted as values.
fn allow_negative_numbers(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names
        .into_iter()
        .fold(cmd.allow_negative_numbers(true), |cmd, n| {
            cmd.mut_subcommand(n, allow_negative_numbers)
        })
}
