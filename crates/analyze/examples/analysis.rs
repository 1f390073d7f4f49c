//! The analyses without the CLI, for benchmarks and quick looks:
//!
//! ```text
//! cargo run -p weightspace-analyze --example analysis -- spectral PATH [--no-traps]   # JSON
//! cargo run -p weightspace-analyze --example analysis -- lineage PATH...              # JSON
//! cargo run -p weightspace-analyze --example analysis -- report OUT.html PATH...
//! ```

use std::path::PathBuf;
use std::time::Instant;

use weightspace_analyze::discover::{discover, label};
use weightspace_analyze::{lineage, report, spectral};
use weightspace_io::Checkpoint;

fn open(paths: &[String]) -> Vec<(String, Checkpoint)> {
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    discover(&paths)
        .expect("paths")
        .iter()
        .map(|p| (label(p), Checkpoint::open(p).expect("checkpoint")))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t = Instant::now();
    match args.first().map(String::as_str) {
        Some("spectral") => {
            let ck = Checkpoint::open(&args[1]).expect("checkpoint");
            let opts = spectral::SpectralOptions {
                randomize: !args.iter().any(|a| a == "--no-traps"),
                ..Default::default()
            };
            let rep = spectral::spectral(&ck, &opts, &|| {}).expect("spectral");
            println!("{}", serde_json::to_string(&rep).unwrap());
        }
        Some("lineage") => {
            let models = open(&args[1..]);
            let rep = lineage::lineage(&models, &lineage::LineageOptions::default(), &|| {})
                .expect("lineage");
            println!("{}", serde_json::to_string(&rep).unwrap());
        }
        Some("report") => {
            let models = open(&args[2..]);
            let data =
                report::build(&models, &report::ReportOptions::default(), &|| {}).expect("report");
            weightspace_io::write_atomic(
                std::path::Path::new(&args[1]),
                report::render(&data, 24).as_bytes(),
            )
            .expect("write");
        }
        _ => {
            eprintln!(
                "usage: analysis spectral PATH [--no-traps] | lineage PATH... | report OUT PATH..."
            );
            std::process::exit(2);
        }
    }
    eprintln!("elapsed {:.3} s", t.elapsed().as_secs_f64());
}
