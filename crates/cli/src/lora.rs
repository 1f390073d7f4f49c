//! `weightspace lora`: merge a PEFT LoRA adapter into its base; extract one from a fine-tune.

use std::path::PathBuf;

use serde_json::json;
use weightspace_io::DType;
use weightspace_merge::config::parse_dtype;
use weightspace_merge::lora;

use crate::exit::lift;
use crate::exit::{bad_input, output_file, shard_size};
use crate::progress;

/// PEFT LoRA adapters (a folder with adapter_model.safetensors and adapter_config.json).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

/// The two LoRA commands.
#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Merge an adapter into its base: W += scale · B·A for every adapted module.
    ///
    /// scale is lora_alpha / r (lora_alpha / √r with use_rslora), per module from rank_pattern
    /// and alpha_pattern; the update is transposed with fan_in_fan_out (GPT-2 Conv1D) and for
    /// embedding LoRAs; LoRA biases (lora_B.bias) are added and modules_to_save tensors
    /// replace the base's. An adapter target missing in the base is an error naming it
    /// (exit 2). Every other base tensor is copied unchanged, in the base's dtypes.
    #[command(
        verbatim_doc_comment,
        after_help = "Examples:
  weightspace lora merge Llama-3.2-1B/ my-adapter/ -o merged.safetensors
  weightspace lora merge gpt2/ gpt2-lora/ -o merged/ --json"
    )]
    Merge {
        /// The base checkpoint (file, folder or *.index.json).
        base: PathBuf,
        /// The adapter folder (adapter_model.safetensors or .bin, adapter_config.json).
        adapter: PathBuf,
        /// Output `.safetensors` file, or an existing folder (model.safetensors inside); never
        /// an input, nor an existing file without --overwrite.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace an existing output file.
        #[arg(long)]
        overwrite: bool,
        /// Shard the output when it exceeds this size (e.g. 5GB).
        #[arg(long, value_name = "SIZE")]
        max_shard_size: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        open: crate::open::OpenArgs,
    },
    /// Extract a rank-r adapter from FINETUNED − BASE, as mergekit-extract-lora.
    ///
    /// Each changed 2-D *.weight difference is factored by truncated SVD,
    /// Δ ≈ U_k S_k V_kᵀ, into lora_A = √S_k V_kᵀ [k, in] and lora_B = U_k √S_k [out, k] with
    /// k = min(rank, out, in); r = lora_alpha = the largest k (scale 1), rank_pattern and
    /// alpha_pattern for smaller modules. Changed embeddings (names with embed, lm_head, wte,
    /// wpe) are saved whole (modules_to_save); other changed tensors (norms, biases) cannot be
    /// carried by a LoRA and are listed. Prints each module's retained energy share
    /// Σ_{i≤k} σ_i² / Σ σ_i². Weights stored [in, out] (GPT-2 Conv1D) need --fan-in-fan-out.
    /// Writes OUT_DIR/adapter_model.safetensors and OUT_DIR/adapter_config.json (PEFT
    /// loads them with PeftModel.from_pretrained) and a card OUT_DIR/README.md (both models'
    /// paths and BLAKE3 model hashes, each module's rank and energy kept).
    #[command(
        verbatim_doc_comment,
        after_help = "Examples:
  weightspace lora extract base/ finetuned/ --rank 16 -o my-adapter/
  weightspace lora extract gpt2/ gpt2-ft/ --rank 8 --fan-in-fan-out -o gpt2-lora/"
    )]
    Extract {
        /// The base checkpoint.
        base: PathBuf,
        /// The fine-tuned checkpoint.
        finetuned: PathBuf,
        /// Largest rank per module.
        #[arg(long, short)]
        rank: usize,
        /// Output folder (must not exist or be empty, unless --overwrite).
        #[arg(short, long)]
        output: PathBuf,
        /// Dtype of lora_A/lora_B (float32, float16, bfloat16, float64).
        #[arg(long, default_value = "float32")]
        dtype: String,
        /// The weights are stored [in, out] (GPT-2's Conv1D): factor Δᵀ and set fan_in_fan_out.
        #[arg(long)]
        fan_in_fan_out: bool,
        /// Replace the output folder if it exists and is not empty.
        #[arg(long)]
        overwrite: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        open: crate::open::OpenArgs,
    },
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    match a.command {
        Cmd::Merge {
            base,
            adapter,
            output,
            overwrite,
            max_shard_size,
            json,
            open,
        } => {
            let out = output_file(&output);
            crate::exit::check_safetensors_output(&out, &[&base, &adapter], overwrite)?;
            let b = open.open(&base)?;
            let r = lora::merge_adapter(&b, &adapter, &out, shard_size(max_shard_size.as_deref())?)
                .map_err(lift)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "files": r.files,
                        "changed": r.changed.iter().map(|c| json!({
                            "tensor": c.tensor, "kind": c.kind, "rank": c.rank, "scale": c.scale,
                        })).collect::<Vec<_>>(),
                        "unchanged": r.unchanged,
                    }))?
                );
            } else {
                for c in &r.changed {
                    match c.kind {
                        "replaced" => println!("  {}: replaced (modules_to_save)", c.tensor),
                        k => println!("  {}: {k} rank {} scale {}", c.tensor, c.rank, c.scale),
                    }
                }
                println!(
                    "merged {} into {} tensors ({} copied unchanged)",
                    adapter.display(),
                    r.changed.len(),
                    r.unchanged
                );
                for f in &r.files {
                    println!("wrote {}", f.display());
                }
            }
        }
        Cmd::Extract {
            base,
            finetuned,
            rank,
            output,
            dtype,
            fan_in_fan_out,
            overwrite,
            json,
            open,
        } => {
            let dtype: DType = parse_dtype(&dtype).ok_or_else(|| {
                bad_input(format!(
                    "--dtype {dtype}: expected float32, float16, bfloat16 or float64"
                ))
            })?;
            let b = open.open(&base)?;
            let f = open.open(&finetuned)?;
            let pb = progress::bar(f.len() as u64, "extracting");
            let r = lora::extract(
                &b,
                &f,
                &output,
                &lora::ExtractOptions {
                    rank,
                    dtype,
                    base_name: base.display().to_string(),
                    overwrite,
                    fan_in_fan_out,
                },
                |i, name| {
                    pb.set_position(i as u64);
                    pb.set_prefix(name.to_string());
                },
            )
            .map_err(lift)?;
            pb.finish_and_clear();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "out_dir": r.out_dir,
                        "files": r.files,
                        "modules": r.modules.iter().map(|m| json!({
                            "module": m.module, "shape": m.shape, "rank": m.rank,
                            "energy": m.energy, "singular_values": m.singular_values,
                        })).collect::<Vec<_>>(),
                        "saved_whole": r.saved_whole,
                        "not_captured": r.not_captured.iter().map(|(n, rel)| json!({"tensor": n, "relative_change": rel})).collect::<Vec<_>>(),
                        "unchanged": r.unchanged,
                    }))?
                );
            } else {
                println!(
                    "{:<60} {:>12} {:>5} {:>8}",
                    "module", "shape", "rank", "energy"
                );
                for m in &r.modules {
                    println!(
                        "{:<60} {:>12} {:>5} {:>7.2}%",
                        m.module,
                        format!("{}x{}", m.shape[0], m.shape[1]),
                        m.rank,
                        100.0 * m.energy
                    );
                }
                for n in &r.saved_whole {
                    println!("{n}: embedding saved whole (modules_to_save)");
                }
                for (n, rel) in &r.not_captured {
                    eprintln!(
                        "warning: {n} changed (|Δ|/|W| = {rel:.3e}) but a LoRA adapter cannot carry it; left out"
                    );
                }
                println!(
                    "extracted {} modules into {} ({} unchanged weights left out)",
                    r.modules.len(),
                    r.out_dir.display(),
                    r.unchanged
                );
            }
        }
    }
    Ok(())
}
