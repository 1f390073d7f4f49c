//! One self-contained HTML report over one or more models: the inspect and stats tables,
//! spectral metrics with an ESD plot per layer (log-log histogram and the fitted power law),
//! α per layer, a similarity heat map and a lineage tree drawing (with two models or more).
//! Charts are inline SVG written by [`svg`]; the page has no script and loads nothing.

pub mod svg;

use std::fmt::Write;

use serde::Serialize;
use weightspace_io::Checkpoint;

use crate::error::Error;
use crate::lineage::{self, LineageOptions, LineageReport};
use crate::similarity::{self, SimilarityOptions, SimilarityReport};
use crate::spectral::{self, LayerSpectrum, SpectralOptions, SpectralReport};
use crate::stats::{TensorStats, checkpoint_stats};
use svg::{Axis, Chart, esc};

/// Options of [`build`].
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Spectral options.
    pub spectral: SpectralOptions,
    /// Lineage options.
    pub lineage: LineageOptions,
}

/// Everything the report shows about one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSection {
    /// Path as given.
    pub label: String,
    /// Detected format.
    pub format: String,
    /// Tensors.
    pub tensors: usize,
    /// Parameters.
    pub params: u64,
    /// Stored bytes.
    pub bytes: u64,
    /// Per-tensor statistics.
    pub stats: Vec<TensorStats>,
    /// Spectral metrics.
    pub spectral: SpectralReport,
}

/// The data behind a report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    /// One section per model.
    pub models: Vec<ModelSection>,
    /// Pairwise similarity (two models or more).
    pub similarity: Option<SimilarityReport>,
    /// Recovered lineage (two models or more).
    pub lineage: Option<LineageReport>,
}

/// Computes everything a report shows. `progress` is called after each step (one per model,
/// then one for similarity and one for lineage).
pub fn build(
    models: &[(String, Checkpoint)],
    opts: &ReportOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<ReportData, Error> {
    let mut sections = Vec::with_capacity(models.len());
    for (label, ck) in models {
        let stats = checkpoint_stats(ck, &|| {})?;
        let spectral = spectral::spectral(ck, &opts.spectral, &|| {})?;
        sections.push(ModelSection {
            label: label.clone(),
            format: ck.format().name().to_string(),
            tensors: ck.len(),
            params: ck.total_params(),
            bytes: ck.total_bytes(),
            stats,
            spectral,
        });
        progress();
    }
    let (similarity, lineage) = if models.len() >= 2 {
        let s = similarity::similarity(models, &SimilarityOptions::default(), &|| {})?;
        progress();
        let l = lineage::lineage(models, &opts.lineage, &|| {})?;
        progress();
        (Some(s), Some(l))
    } else {
        (None, None)
    };
    Ok(ReportData {
        models: sections,
        similarity,
        lineage,
    })
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:2200px;padding:0 24px;color:#1b1f24}\
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #dde;padding-bottom:4px;margin-top:32px}h3{font-size:15px}\
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #eef}th{text-align:left;background:#f6f8fb}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.grid{display:flex;flex-wrap:wrap;gap:10px}\
svg{font:11px system-ui,sans-serif}svg .t{font-weight:600;font-size:12px}svg .s{font-size:10px;fill:#555}\
.muted{color:#667}.wide{overflow-x:auto}details{margin:8px 0}summary{cursor:pointer;font-weight:600}code{background:#f3f4f6;padding:1px 4px;border-radius:3px}";

fn num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn shape(s: &[usize]) -> String {
    let d: Vec<String> = s.iter().map(|x| x.to_string()).collect();
    format!("[{}]", d.join(", "))
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "<td>{}</td>", esc(c));
            } else {
                let _ = write!(out, "<td class=\"n\">{}</td>", esc(c));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// Like [`table`], every column left-aligned (text columns).
fn table_left(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// The similarity heading, explanation and heat map. Colours span the finite off-diagonal
/// range, so near-identical models still differ; a pair without a value is grey and named
/// ("no shared tensors", or a zero norm), never drawn as a similarity.
fn similarity_section(s: &SimilarityReport) -> String {
    let n = s.models.len();
    let off: Vec<f64> = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .filter_map(|(i, j)| s.cosine_matrix.get(i).and_then(|r| r.get(j)).copied())
        .filter(|v| v.is_finite())
        .collect();
    let lo = off.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = off
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .max(1.0);
    let lo = if lo.is_finite() { lo.min(hi) } else { hi };
    let pair = |i: usize, j: usize| {
        let (a, b) = (&s.models[i.min(j)], &s.models[i.max(j)]);
        s.pairs.iter().find(|p| &p.a == a && &p.b == b)
    };
    let missing = |i: usize, j: usize| match pair(i, j) {
        Some(p) if p.shared_numel == 0 => "no shared tensors".to_string(),
        Some(_) => "undefined (a model's shared tensors are all zero)".to_string(),
        None => "no shared tensors".to_string(),
    };
    let no_shared = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .filter(|&(i, j)| pair(i, j).is_some_and(|p| p.shared_numel == 0))
        .count();
    let mut o = String::from("<h2 id=\"similarity\">Similarity</h2><p class=\"muted\">");
    if off.is_empty() {
        o.push_str("No pair of models has a cosine similarity. ");
    } else {
        let _ = write!(
            o,
            "Cosine similarity over the floating-point parameters each pair shares; colours from {} (white, the least similar pair) to {} (dark). ",
            num(lo),
            num(hi)
        );
    }
    if no_shared > 0 {
        let _ = write!(
            o,
            "{no_shared} pair(s) share no tensor (same name and shape) and are grey, marked \"no shared tensors\"."
        );
    }
    let mut left_out: Vec<&str> = Vec::new();
    for e in s.pairs.iter().flat_map(|p| &p.excluded) {
        if !left_out.contains(&e.name.as_str()) {
            left_out.push(&e.name);
        }
    }
    if !left_out.is_empty() {
        let shown: Vec<String> = left_out
            .iter()
            .take(8)
            .map(|n| format!("<code>{}</code>", esc(n)))
            .collect();
        let _ = write!(
            o,
            " Buffers are left out ({} tensor(s): integer ids and counters, BatchNorm running statistics): {}{}.",
            left_out.len(),
            shown.join(", "),
            if left_out.len() > 8 { ", …" } else { "" }
        );
    }
    let dir = svg::common_dir(&s.models);
    if !dir.is_empty() {
        let _ = write!(o, " Labels are paths under <code>{}</code>.", esc(dir));
    }
    o.push_str("</p><div class=\"wide\">");
    o.push_str(&svg::heatmap(
        &s.models,
        &s.cosine_matrix,
        "cosine similarity",
        (lo, hi),
        &missing,
    ));
    o.push_str("</div>");
    o
}

/// The ESD of one layer: log-log histogram of the eigenvalues and the fitted power law.
pub fn esd_plot(l: &LayerSpectrum) -> String {
    let pos: Vec<f64> = l.evals.iter().copied().filter(|&x| x > 1e-12).collect();
    // The chart shortens the name to its width (full name in the tooltip); α and the fit's
    // quality on a line of their own, so they are never cut.
    let sub = format!(
        "α = {}, D = {}, {} eigenvalues",
        num(l.alpha),
        num(l.d),
        l.num_evals
    );
    let (w, h) = (330.0, 226.0);
    if pos.len() < 2 {
        let c = Chart::with_subtitle(
            w,
            h,
            Axis::fit(std::iter::empty(), true),
            Axis::fit(std::iter::empty(), true),
            &l.name,
            &sub,
            "eigenvalue λ",
            "density",
        );
        return c.finish();
    }
    let (lo, hi) = (pos[0].log10(), pos[pos.len() - 1].log10());
    let nb = 30usize;
    let width = ((hi - lo) / nb as f64).max(1e-9);
    let mut counts = vec![0usize; nb];
    for &x in &pos {
        let k = (((x.log10() - lo) / width) as usize).min(nb - 1);
        counts[k] += 1;
    }
    let n = pos.len() as f64;
    let bars: Vec<(f64, f64, f64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(k, &c)| {
            let (a, b) = (
                10f64.powf(lo + k as f64 * width),
                10f64.powf(lo + (k + 1) as f64 * width),
            );
            (a, b, c as f64 / (n * (b - a)))
        })
        .collect();
    // Fitted power law over the tail, as a density over all eigenvalues shown.
    let mut pl = Vec::new();
    if l.alpha.is_finite() && l.xmin > 0.0 {
        let frac = l.num_pl_spikes as f64 / n;
        let (a0, a1) = (l.xmin.log10(), hi);
        for k in 0..=40 {
            let x = 10f64.powf(a0 + (a1 - a0) * k as f64 / 40.0);
            pl.push((
                x,
                frac * (l.alpha - 1.0) / l.xmin * (x / l.xmin).powf(-l.alpha),
            ));
        }
    }
    let x = Axis::fit(
        bars.iter().flat_map(|b| [b.0, b.1]).chain([l.bulk_max]),
        true,
    );
    let y = Axis::fit(bars.iter().map(|b| b.2), true);
    let mut c = Chart::with_subtitle(w, h, x, y, &l.name, &sub, "eigenvalue λ", "density");
    for &(a, b, d) in &bars {
        c.rect(
            a,
            b,
            y.lo,
            d,
            "#8fb3e8",
            &format!("{} – {}: {}", num(a), num(b), num(d)),
        );
    }
    let clipped: Vec<(f64, f64)> = pl
        .into_iter()
        .filter(|p| p.1 >= y.lo && p.1 <= y.hi)
        .collect();
    if !clipped.is_empty() {
        c.line(&clipped, "#d2452c", 2.0, false);
    }
    if l.xmin.is_finite() && l.xmin > 0.0 {
        c.vline(l.xmin, "#d2452c", "xmin");
    }
    if l.bulk_max.is_finite() && l.bulk_max > x.lo && l.bulk_max < x.hi {
        c.vline(l.bulk_max, "#2e8b57", "MP edge");
    }
    c.finish()
}

/// α per layer, with WeightWatcher's well-trained band 2 ≤ α ≤ 6.
pub fn alpha_plot(layers: &[LayerSpectrum], title: &str) -> String {
    let n = layers.len().max(1) as f64;
    // Bars centred on whole-number ticks (the layer's index in file order).
    let x = Axis {
        lo: -0.5,
        hi: n - 0.5,
        log: false,
        integer: true,
    };
    let y = Axis::fit(layers.iter().map(|l| l.alpha).chain([0.0, 6.5]), false);
    let w = (300.0 + 14.0 * n).min(1100.0);
    let mut c = Chart::new(w, 240.0, x, y, title, "layer (file order)", "α");
    c.rect(
        -0.5,
        n - 0.5,
        2.0,
        6.0_f64.min(y.hi),
        "#eef6ee",
        "2 ≤ α ≤ 6",
    );
    for (i, l) in layers.iter().enumerate() {
        if l.alpha.is_finite() {
            let color = if (2.0..=6.0).contains(&l.alpha) {
                "#4a7fd4"
            } else {
                "#d2452c"
            };
            c.rect(
                i as f64 - 0.35,
                i as f64 + 0.35,
                y.lo.max(0.0),
                l.alpha,
                color,
                &format!("{}: α = {}", l.name, num(l.alpha)),
            );
        }
    }
    c.finish()
}

/// The report as one HTML document, with at most `max_esd_plots` ESD plots per model.
pub fn render(data: &ReportData, max_esd_plots: usize) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>weightspace report</title><style>{CSS}</style></head><body><h1>weightspace report</h1><p class=\"muted\">{} model(s), analysed from their weights alone by weightspace {}. Spectral metrics follow WeightWatcher 0.7.7's definitions.</p>",
        data.models.len(),
        env!("CARGO_PKG_VERSION")
    );
    // Overview (inspect).
    o.push_str("<h2 id=\"overview\">Models</h2>");
    let rows: Vec<Vec<String>> = data
        .models
        .iter()
        .map(|m| {
            vec![
                m.label.clone(),
                m.format.clone(),
                m.tensors.to_string(),
                m.params.to_string(),
                m.bytes.to_string(),
                m.spectral.summary.num_layers.to_string(),
                m.spectral.summary.num_skipped.to_string(),
                num(m.spectral.summary.alpha),
                num(m.spectral.summary.alpha_weighted),
                num(m.spectral.summary.log_norm),
                num(m.spectral.summary.stable_rank),
            ]
        })
        .collect();
    table(
        &mut o,
        &[
            "model",
            "format",
            "tensors",
            "parameters",
            "bytes",
            "matrices",
            "skipped",
            "mean α",
            "mean α-weighted",
            "mean log-norm",
            "mean stable rank",
        ],
        &rows,
    );
    if let Some(s) = &data.similarity {
        o.push_str(&similarity_section(s));
    }
    if let Some(l) = &data.lineage {
        o.push_str("<h2 id=\"lineage\">Lineage</h2><p class=\"muted\">Recovered from weight distances and kurtosis (MoTHer); edges labelled with relative distance and confidence. Blue boxes are roots (no parent found among the models given).</p>");
        let parent: Vec<Option<usize>> = l
            .nodes
            .iter()
            .map(|n| {
                l.edges
                    .iter()
                    .find(|e| &e.child == n)
                    .and_then(|e| l.nodes.iter().position(|x| *x == e.parent))
            })
            .collect();
        let caption: Vec<String> = l
            .nodes
            .iter()
            .map(|n| {
                l.edges
                    .iter()
                    .find(|e| &e.child == n)
                    .map_or(String::new(), |e| {
                        format!("d={:.3} c={:.2}", e.distance, e.confidence)
                    })
            })
            .collect();
        let alone: Vec<&str> = l
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| parent[*i].is_none() && !parent.contains(&Some(*i)))
            .map(|(_, n)| n.as_str())
            .collect();
        if !alone.is_empty() {
            let names: Vec<String> = alone
                .iter()
                .map(|n| format!("<code>{}</code>", esc(n)))
                .collect();
            let _ = write!(
                o,
                "<p class=\"muted\">{} model(s) without an edge (dashed): each is farther than the split threshold (relative distance) from every other model, or shares no tensors with them, so it is taken as unrelated and no parent or child is claimed: {}.</p>",
                alone.len(),
                names.join(", ")
            );
        }
        o.push_str("<div class=\"wide\">");
        o.push_str(&svg::tree(&l.nodes, &parent, &caption));
        o.push_str("</div>");
    }
    for (k, m) in data.models.iter().enumerate() {
        let _ = write!(o, "<h2 id=\"model{k}\">{}</h2>", esc(&m.label));
        let s = &m.spectral;
        if let Some(layout) = s.conv_layout {
            let _ = write!(
                o,
                "<p class=\"muted\">Convolution kernels read as <code>{}</code> ({}).</p>",
                layout.name(),
                match layout {
                    spectral::ConvLayout::Oihw => "[out, in, kh, kw]",
                    spectral::ConvLayout::Hwio => "[kh, kw, in, out]",
                }
            );
        }
        if s.layers.is_empty() {
            o.push_str(
                "<p class=\"muted\">No weight matrices large enough for spectral metrics.</p>",
            );
        } else {
            o.push_str(&alpha_plot(&s.layers, "α per layer"));
            o.push_str("<h3>Empirical spectral densities</h3><div class=\"grid\">");
            for l in s.layers.iter().take(max_esd_plots) {
                o.push_str(&esd_plot(l));
            }
            o.push_str("</div>");
            if s.layers.len() > max_esd_plots {
                let _ = write!(
                    o,
                    "<p class=\"muted\">{} more layers in the table below.</p>",
                    s.layers.len() - max_esd_plots
                );
            }
            let rows: Vec<Vec<String>> = s
                .layers
                .iter()
                .map(|l| {
                    vec![
                        l.name.clone(),
                        shape(&l.shape),
                        num(l.alpha),
                        num(l.alpha_weighted),
                        num(l.xmin),
                        num(l.d),
                        l.num_evals.to_string(),
                        num(l.lambda_max),
                        num(l.log_norm),
                        num(l.stable_rank),
                        num(l.mp_softrank),
                        l.num_spikes.map_or("–".into(), |v| v.to_string()),
                        l.num_traps.map_or("–".into(), |v| v.to_string()),
                    ]
                })
                .collect();
            o.push_str("<details open><summary>Spectral metrics</summary>");
            table(
                &mut o,
                &[
                    "layer",
                    "shape",
                    "α",
                    "α-weighted",
                    "xmin",
                    "D",
                    "evals",
                    "λmax",
                    "log-norm",
                    "stable rank",
                    "MP soft rank",
                    "spikes",
                    "traps",
                ],
                &rows,
            );
            o.push_str("</details>");
        }
        if !s.skipped.is_empty() {
            let rows: Vec<Vec<String>> = s
                .skipped
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        shape(&t.shape),
                        t.dtype.clone(),
                        t.reason.clone(),
                    ]
                })
                .collect();
            let _ = write!(
                o,
                "<details><summary>Tensors without spectral metrics ({})</summary>",
                rows.len()
            );
            table_left(&mut o, &["tensor", "shape", "dtype", "reason"], &rows);
            o.push_str("</details>");
        }
        let rows: Vec<Vec<String>> = m
            .stats
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.dtype.clone(),
                    shape(&t.shape),
                    num(t.mean),
                    num(t.std),
                    num(t.min),
                    num(t.q25),
                    num(t.median),
                    num(t.q75),
                    num(t.max),
                    num(t.l2),
                    format!("{:.1}%", t.sparsity * 100.0),
                ]
            })
            .collect();
        o.push_str("<details><summary>Tensor statistics</summary>");
        table(
            &mut o,
            &[
                "tensor", "dtype", "shape", "mean", "std", "min", "q25", "median", "q75", "max",
                "L2", "zeros",
            ],
            &rows,
        );
        o.push_str("</details>");
    }
    o.push_str("</body></html>\n");
    o
}
