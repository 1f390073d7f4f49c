//! The `learn bench` of the CLI as a library example (same code path):
//!   cargo run -p weightspace-learn --example bench -- ZOO MODELS SEEDS EPOCHS [STATES]
//! e.g. `… -- digits-cnn stats-gbm,stats-mlp,flat-mlp 3 40 all`.

use weightspace_learn::{self as learn, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: bench ZOO MODELS SEEDS EPOCHS [STATES]");
        std::process::exit(2);
    }
    let models: Vec<String> = a[2].split(',').map(String::from).collect();
    let seeds: Vec<u64> = (0..a[3].parse::<u64>()?).collect();
    let epochs: usize = a[4].parse()?;
    let states = a.get(5).map(|s| s.as_str()).unwrap_or("all").parse()?;
    let zoo = learn::load_zoo(
        a[1].as_ref(),
        &LoadOptions {
            target: "test_acc".into(),
            states,
            group: None,
        },
        None,
    )?;
    let cfg = |m: &str| {
        let mut c = learn::learner::default_config(m);
        c.epochs = epochs;
        c
    };
    let report = learn::bench::bench(&zoo, &models, &seeds, 0, &cfg, &|r| {
        eprintln!(
            "{} seed {}: test {:?} ({} epochs, {:.1} s)",
            r.model, r.seed, r.test, r.epochs_run, r.seconds
        )
    })?;
    println!(
        "{} states of {} (models {}/{}/{} train/val/test), target {}",
        report.states, report.zoo, report.split.0, report.split.1, report.split.2, report.target
    );
    print!("{}", report.markdown());
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
