//! The `weightspace` command line: parses arguments, calls the library crates, prints results.
//! Results go to stdout (human tables, or JSON with `--json`); progress and logs to stderr.

mod exit;
mod progress;
mod zoo;

use clap::{Parser, Subcommand};

/// weightspace: trained neural-network weights as a data modality.
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
    /// Train, list, evaluate and export populations of small trained networks.
    #[command(subcommand)]
    Zoo(zoo::ZooCmd),
}

fn main() {
    let cli = Cli::parse();
    progress::set_quiet(cli.quiet);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result: anyhow::Result<()> = match cli.command {
        Command::Zoo(cmd) => zoo::run(cmd),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(exit::exit_code(&e));
    }
}
