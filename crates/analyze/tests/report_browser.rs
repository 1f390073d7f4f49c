//! The HTML report opened in a real browser (headless Chromium): it must log no console message
//! at all, and its screenshot must show the charts (not a blank or text-only page).
//!
//! Needs Chromium (Debian: `apt-get install -y --no-install-recommends chromium`; CI installs it).
//! Without it the test says so and passes, except where `CI=true`: there it fails, so CI never
//! skips it silently. `WEIGHTSPACE_KEEP_REPORT=DIR` keeps the page and the screenshot in DIR.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weightspace_analyze::report::{ReportOptions, build, render};
use weightspace_io::Checkpoint;

/// The first Chromium-like browser on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs the browser on `page` with `extra` flags; returns its stderr (where
/// `--enable-logging=stderr` sends console messages). Killed after two minutes.
fn run_browser(chrome: &Path, profile: &Path, page: &Path, extra: &[String]) -> String {
    let log = profile.with_extension("log");
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chrome.display()));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within two minutes on {}",
                chrome.display(),
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(&log).unwrap_or_default()
}

/// Console messages in Chromium's log: lines such as
/// `[…:INFO:CONSOLE(1)] "message", source: file:///… (1)` (any level), and uncaught errors.
fn console_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

/// Decodes a PNG screenshot to RGB(A) rows: (width, height, channels, pixels).
fn decode_png(path: &Path) -> (usize, usize, usize, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap();
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, channels, buf)
}

/// Distinct colours (sampled every 4th pixel) and the share of pixels that are not near-white.
fn colour_stats(path: &Path) -> (usize, f64) {
    let (w, h, ch, px) = decode_png(path);
    assert!(w > 0 && h > 0 && ch >= 3, "{w}x{h} with {ch} channels");
    let mut colours = std::collections::HashSet::new();
    let mut inked = 0usize;
    for y in 0..h {
        for x in 0..w {
            let p = &px[(y * w + x) * ch..][..3];
            if p.iter().any(|&c| c < 235) {
                inked += 1;
            }
            if x % 4 == 0 && y % 4 == 0 {
                colours.insert([p[0], p[1], p[2]]);
            }
        }
    }
    (colours.len(), inked as f64 / (w * h) as f64)
}

/// Models for a report that exercises every section: a fine-tune family (similarity, lineage,
/// α charts, ESD plots with long layer names), a PyTorch-layout conv kernel, a model that
/// shares no tensor with the others (grey "no shared tensors" cells, a lineage node without
/// edges) and skipped tensors.
fn models(dir: &Path) -> Vec<(String, Checkpoint)> {
    let mut out = Vec::new();
    let tree = common::fine_tune_tree(4, 5);
    for (i, m) in tree.models.iter().enumerate() {
        let p = dir.join(format!("m{i}.safetensors"));
        // Long names, as in real transformers (shortened in chart titles).
        let mut t = m.tensors();
        for x in &mut t {
            x.0 = format!("model.encoder.layer.0.attention.output.dense.{}", x.0);
        }
        common::write_f32(&p, &t);
        out.push((
            format!("family/model-{i}.safetensors"),
            Checkpoint::open(&p).unwrap(),
        ));
    }
    let mut g = weightspace_analyze::rng::SplitMix64::new(3);
    let conv: Vec<f32> = (0..16 * 16 * 64)
        .map(|_| common::normal(&mut g) as f32)
        .collect();
    let bias: Vec<f32> = (0..16).map(|k| k as f32 * 0.1).collect();
    let p = dir.join("crepe.safetensors");
    common::write_f32(
        &p,
        &[
            ("conv3.weight".into(), vec![16, 16, 64, 1], conv),
            ("conv3.bias".into(), vec![16], bias),
        ],
    );
    out.push((
        "a-very-long-directory-name/of/a/crepe-like/pitch-model.safetensors".into(),
        Checkpoint::open(&p).unwrap(),
    ));
    out
}

#[test]
fn report_renders_in_chromium_without_console_messages() {
    let dir = tempfile::tempdir().unwrap();
    let models = models(dir.path());
    let data = build(&models, &ReportOptions::default(), &|| {}).unwrap();
    let html = render(&data, 24);
    // Rendered without a browser too: a pair sharing no tensor is named, never NaN; the lone
    // model is explained; long names are shortened with the full name kept in a tooltip.
    assert!(html.contains("no shared tensors"));
    assert!(!html.contains("NaN"));
    assert!(html.contains("1 model(s) without an edge"));
    assert!(html.contains("<title>model.encoder.layer.0.attention.output.dense.linear.weight ("));
    assert!(html.contains(">model.encoder.layer.0…"));
    let Some(chrome) = chromium() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "chromium not installed, and CI=true: the report must be checked in a browser in CI (apt-get install -y --no-install-recommends chromium)"
            );
        }
        eprintln!("skipped: chromium not installed (apt-get install chromium)");
        return;
    };
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    // The log must be able to show a console message, or "none" would prove nothing: a probe
    // page that logs one.
    let probe = dir.path().join("probe.html");
    std::fs::write(
        &probe,
        "<!DOCTYPE html><html><body><script>console.error('weightspace-probe')</script></body></html>",
    )
    .unwrap();
    let log = run_browser(
        &chrome,
        &dir.path().join("profile-probe"),
        &probe,
        &["--dump-dom".into()],
    );
    assert!(
        console_lines(&log)
            .iter()
            .any(|l| l.contains("weightspace-probe")),
        "the browser log does not show console messages, so the check below would be void:\n{log}"
    );

    let shot = dir.path().join("report.png");
    let log = run_browser(
        &chrome,
        &dir.path().join("profile-report"),
        &page,
        &[
            "--window-size=1400,2400".into(),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let console = console_lines(&log);
    assert!(
        console.is_empty(),
        "console messages while loading the report:\n{}",
        console.join("\n")
    );
    assert!(shot.is_file(), "no screenshot written; browser log:\n{log}");
    // To look at it: WEIGHTSPACE_KEEP_REPORT=DIR keeps the page and its screenshot there.
    if let Some(keep) = std::env::var_os("WEIGHTSPACE_KEEP_REPORT") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join("report.html")).unwrap();
        std::fs::copy(&shot, keep.join("report.png")).unwrap();
    }
    let (colours, inked) = colour_stats(&shot);
    // A blank page is one colour and no ink; text alone is greys. Charts (blue bars, red fits,
    // the heat map's ramp) give many colours.
    assert!(
        colours >= 40 && inked > 0.02,
        "the screenshot looks blank: {colours} colours, {:.1}% non-white",
        inked * 100.0
    );

    // The same check on a blank page must fail, or it checks nothing.
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_shot = dir.path().join("blank.png");
    run_browser(
        &chrome,
        &dir.path().join("profile-blank"),
        &blank,
        &[
            "--window-size=1400,2400".into(),
            format!("--screenshot={}", blank_shot.display()),
        ],
    );
    let (c, i) = colour_stats(&blank_shot);
    assert!(c < 40 && i <= 0.02, "a blank page passed: {c} colours, {i}");
}
