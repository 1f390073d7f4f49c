//! The library path of `weightspace merge` without the CLI around it (no progress bar):
//! `cargo run --release -p weightspace-merge --example merge -- CONFIG.yaml OUT_DIR [SEED]`.
//! `bench/merge/run.sh` times this binary when the full CLI is not built.

use std::path::Path;

use weightspace_merge::{ExecOptions, MergeConfig, PlanOptions, execute, plan};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: merge CONFIG.yaml OUT_DIR [SEED]");
        std::process::exit(2);
    }
    let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let run = || -> weightspace_merge::Result<()> {
        let p = plan(
            MergeConfig::from_file(Path::new(&args[1]))?,
            &PlanOptions::default(),
        )?;
        let opts = ExecOptions {
            seed,
            max_shard_bytes: Some(5_000_000_000),
            overwrite: true,
            topk_global: false,
        };
        let s = execute(&p, Path::new(&args[2]), &opts, |_, _| {})?;
        println!("merged {} tensors, {} bytes", s.tensors, s.bytes);
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(if e.is_bad_input() { 2 } else { 1 });
    }
}
