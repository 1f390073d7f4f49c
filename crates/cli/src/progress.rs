//! Progress bars on stderr: hidden when stderr is not a terminal or with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences every progress bar (the `--quiet` flag).
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// True when progress should not be drawn.
pub fn hidden() -> bool {
    QUIET.load(Ordering::Relaxed) || !std::io::stderr().is_terminal()
}

/// A bar over `len` items with a message, elapsed time and ETA.
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    if hidden() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {pos}/{len} ({elapsed} elapsed, ETA {eta}) {prefix}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}
