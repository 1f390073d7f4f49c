//! Shared by the CLI's integration tests.

use std::process::Command;

/// Runs the built `weightspace` binary: (exit code, stdout, stderr).
pub fn ws(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_weightspace"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
