//! Weight matching from the library, as `weightspace spec --json` / `weightspace align --json`
//! do it, without the CLI's other dependencies (the benchmark driver of `bench/symmetry`, quick
//! to build in release).
//!
//! ```text
//! cargo run --release -p weightspace-symmetry --example wm -- spec MODEL
//! cargo run --release -p weightspace-symmetry --example wm -- align REF OTHER OUT [SEED [MAX_ITER]]
//! ```

use std::path::Path;
use std::time::Instant;

use weightspace_io::Checkpoint;
use weightspace_spec::spec_for_checkpoint;
use weightspace_symmetry::{MatchOptions, Weights, align};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // RUST_LOG=weightspace_symmetry=debug shows the loop's steps and counters on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("spec") => {
            let p = Path::new(&args[1]);
            let spec = spec_for_checkpoint(&Checkpoint::open(p)?, p, None)?;
            println!("{}", serde_json::to_string_pretty(&spec)?);
        }
        Some("align") => {
            let t0 = Instant::now();
            let (rp, op) = (Path::new(&args[1]), Path::new(&args[2]));
            let ck = Checkpoint::open(rp)?;
            let spec = spec_for_checkpoint(&ck, rp, None)?;
            let r = Weights::from_checkpoint(&ck)?;
            let o = Weights::open(op)?;
            let seed = args.get(4).map_or(Ok(0), |s| s.parse())?;
            let max_iter = args.get(5).map_or(Ok(100), |s| s.parse())?;
            let t1 = Instant::now();
            let (aligned, res) = align(
                &spec,
                &r,
                &o,
                &MatchOptions {
                    seed,
                    max_iter,
                    init: None,
                },
            )?;
            let t2 = Instant::now();
            aligned.write_safetensors(Path::new(&args[3]), &Default::default())?;
            let t3 = Instant::now();
            println!(
                "{}",
                serde_json::json!({
                    "sweeps": res.sweeps,
                    "groups": spec.groups.len(),
                    "seconds_match": (t2 - t1).as_secs_f64(),
                    "seconds_total": (t3 - t0).as_secs_f64(),
                })
            );
        }
        _ => {
            eprintln!("usage: wm spec MODEL | wm align REF OTHER OUT [SEED [MAX_ITER]]");
            std::process::exit(2);
        }
    }
    Ok(())
}
