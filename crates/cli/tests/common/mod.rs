//! Shared by the CLI's integration tests. Not every test crate uses every helper.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::process::{Command, Output};

/// Runs the built `weightspace` binary. `RUST_LOG` is not passed on, so a developer's log
/// settings cannot add lines to the stderr the tests read.
pub fn run(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weightspace"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run weightspace")
}

/// Runs the binary with `args`: (exit code, stdout, stderr).
pub fn ws(args: &[&str]) -> (i32, String, String) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let o = run(&args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs, asserts exit 0, parses stdout as JSON.
pub fn json_of(args: &[&OsStr]) -> serde_json::Value {
    let o = run(args);
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}
