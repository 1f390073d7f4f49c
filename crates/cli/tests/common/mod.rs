//! Shared by the CLI's integration tests.

use std::process::Command;

/// Runs the built `weightspace` binary: (exit code, stdout, stderr). `RUST_LOG` is not passed
/// on, so a developer's log settings cannot add lines to the stderr the tests read.
pub fn ws(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_weightspace"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
