//! Hand-written inline SVG charts (no dependencies): axes with linear or log₁₀ scales, bars,
//! polylines, heat maps and tree drawings. Every number is formatted with a fixed precision so
//! the output is deterministic.

use std::fmt::Write;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A numeric label: compact, 3 significant digits.
pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-2 {
        format!("{v:.0e}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Approximate width in pixels of `text` at `font_px` (system-ui averages about 0.6 em per
/// character; bold a little more). Used to keep labels inside their chart and apart.
pub fn text_width(text: &str, font_px: f64) -> f64 {
    text.chars().count() as f64 * font_px * 0.62
}

/// `text` shortened (keeping the end) to fit `px` pixels at `font_px`.
pub fn fit(text: &str, px: f64, font_px: f64) -> String {
    let n = (px / (font_px * 0.62)).floor().max(4.0) as usize;
    shorten(text, n)
}

/// An axis: a data range mapped to pixels, linear or log₁₀.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    /// Smallest value shown (in data units; > 0 for log axes).
    pub lo: f64,
    /// Largest value shown.
    pub hi: f64,
    /// Log₁₀ scale.
    pub log: bool,
    /// Ticks at whole numbers only (counts, indices).
    pub integer: bool,
}

impl Axis {
    fn t(&self, v: f64) -> f64 {
        if self.log {
            let (a, b) = (self.lo.log10(), self.hi.log10());
            (v.max(f64::MIN_POSITIVE).log10() - a) / (b - a).max(1e-12)
        } else {
            (v - self.lo) / (self.hi - self.lo).max(1e-300)
        }
    }

    /// An axis covering `values` (positive ones for log axes), padded a little.
    pub fn fit(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            return Axis {
                lo: if log { 0.1 } else { 0.0 },
                hi: 1.0,
                log,
                integer: false,
            };
        }
        if log {
            let (a, b) = (lo.log10().floor(), hi.log10().ceil());
            let b = if b <= a { a + 1.0 } else { b };
            Axis {
                lo: 10f64.powf(a),
                hi: 10f64.powf(b),
                log,
                integer: false,
            }
        } else {
            let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
            Axis {
                lo: if lo >= 0.0 && lo - pad < 0.0 {
                    0.0
                } else {
                    lo - pad
                },
                hi: hi + pad,
                log,
                integer: false,
            }
        }
    }

    /// Tick positions, at most `max` of them (at least 2 are allowed): powers of ten on log
    /// axes (with 2 and 5 between them when the axis spans two decades or less), 1-2-5 steps
    /// on linear ones, whole numbers on integer ones.
    pub fn ticks(&self, max: usize) -> Vec<f64> {
        let max = max.max(2);
        if self.log {
            let (a, b) = (
                self.lo.log10().round() as i32,
                self.hi.log10().round() as i32,
            );
            let decades = (b - a).max(0) as usize;
            if decades <= 2 && 3 * decades < max {
                let mut v = Vec::new();
                for k in a..=b {
                    for m in [1.0, 2.0, 5.0] {
                        let t = m * 10f64.powi(k);
                        if t >= self.lo * (1.0 - 1e-9) && t <= self.hi * (1.0 + 1e-9) {
                            v.push(t);
                        }
                    }
                }
                return v;
            }
            let step = decades.div_ceil(max - 1).max(1);
            (a..=b).step_by(step).map(|k| 10f64.powi(k)).collect()
        } else {
            let span = self.hi - self.lo;
            if span.is_nan() || span <= 0.0 {
                return vec![self.lo];
            }
            let raw = span / (max - 1) as f64;
            let mag = 10f64.powf(raw.log10().floor());
            let mut step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| span / s <= (max - 1) as f64 + 1e-9)
                .unwrap_or(10.0 * mag);
            if self.integer {
                step = step.ceil().max(1.0);
            }
            let start = (self.lo / step).ceil() * step;
            let mut v = Vec::new();
            let mut x = start;
            while x <= self.hi + step * 1e-9 && v.len() <= max {
                v.push(if x.abs() < step * 1e-9 { 0.0 } else { x });
                x += step;
            }
            v
        }
    }
}

/// A chart frame of a given pixel size with margins for the axes.
pub struct Chart {
    /// The SVG being written.
    pub out: String,
    w: f64,
    h: f64,
    left: f64,
    bottom: f64,
    /// x axis.
    pub x: Axis,
    /// y axis.
    pub y: Axis,
    /// Pixel spans (x0, x1, row) of the labels placed by `vline`, to keep them apart.
    labels: Vec<(f64, f64, usize)>,
    /// Pixel y of the plot area's top.
    top: f64,
}

impl Chart {
    /// A new chart with a title and axis labels. The title shown is shortened (keeping its
    /// end) to the chart's width; the SVG's `<title>` (the tooltip) has it in full.
    pub fn new(w: f64, h: f64, x: Axis, y: Axis, title: &str, xl: &str, yl: &str) -> Chart {
        Chart::with_subtitle(w, h, x, y, title, "", xl, yl)
    }

    /// [`Chart::new`] with a second, smaller title line (when not empty).
    #[allow(clippy::too_many_arguments)]
    pub fn with_subtitle(
        w: f64,
        h: f64,
        x: Axis,
        y: Axis,
        title: &str,
        subtitle: &str,
        xl: &str,
        yl: &str,
    ) -> Chart {
        let mut c = Chart {
            out: String::new(),
            w,
            h,
            left: 52.0,
            bottom: 36.0,
            x,
            y,
            labels: Vec::new(),
            top: if subtitle.is_empty() { 22.0 } else { 34.0 },
        };
        let full = if subtitle.is_empty() {
            title.to_string()
        } else {
            format!("{title} ({subtitle})")
        };
        let _ = write!(
            c.out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{t}</title><rect width="{w}" height="{h}" fill="#fff"/><text x="{tx:.1}" y="14" text-anchor="middle" class="t">{shown}</text>"##,
            t = esc(&full),
            shown = esc(&fit(title, w - 12.0, 12.5)),
            tx = w / 2.0
        );
        if !subtitle.is_empty() {
            let _ = write!(
                c.out,
                r#"<text x="{tx:.1}" y="27" text-anchor="middle" class="s">{}</text>"#,
                esc(&fit(subtitle, w - 12.0, 10.0)),
                tx = w / 2.0
            );
        }
        c.axes(xl, yl);
        c
    }

    /// Pixel x of a data value.
    pub fn px(&self, v: f64) -> f64 {
        self.left + self.x.t(v) * (self.w - self.left - 10.0)
    }

    /// Pixel y of a data value.
    pub fn py(&self, v: f64) -> f64 {
        let top = self.top;
        self.h - self.bottom - self.y.t(v) * (self.h - self.bottom - top)
    }

    fn axes(&mut self, xl: &str, yl: &str) {
        let (x0, y0) = (self.left, self.h - self.bottom);
        let _ = write!(
            self.out,
            r##"<g class="ax"><line x1="{x0}" y1="{y0}" x2="{x1:.1}" y2="{y0}" stroke="#444"/><line x1="{x0}" y1="{top}" x2="{x0}" y2="{y0}" stroke="#444"/>"##,
            x1 = self.w - 10.0,
            top = self.top
        );
        // Room for each x tick label (about six characters) and each y label (a text line).
        let x_room = ((self.w - self.left - 10.0) / 44.0).floor() as usize + 1;
        let y_room = ((self.h - self.bottom - self.top) / 18.0).floor() as usize + 1;
        for t in self.x.ticks(x_room) {
            let p = self.px(t);
            let l = tick_label(t);
            // Kept inside the frame: the last label ends at the right edge.
            let half = text_width(&l, 11.0) / 2.0;
            let tx = p.min(self.w - 1.0 - half);
            let _ = write!(
                self.out,
                r##"<line x1="{p:.1}" y1="{y0}" x2="{p:.1}" y2="{y1}" stroke="#444"/><text x="{tx:.1}" y="{ty}" text-anchor="middle">{l}</text>"##,
                y1 = y0 + 4.0,
                ty = y0 + 15.0,
                l = esc(&l)
            );
        }
        for t in self.y.ticks(y_room) {
            let p = self.py(t);
            let _ = write!(
                self.out,
                r##"<line x1="{x0}" y1="{p:.1}" x2="{x1}" y2="{p:.1}" stroke="#444"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{l}</text>"##,
                x1 = x0 - 4.0,
                tx = x0 - 6.0,
                ty = p + 3.5,
                l = esc(&tick_label(t))
            );
        }
        let _ = write!(
            self.out,
            r#"<text x="{cx:.1}" y="{by:.1}" text-anchor="middle">{xl}</text><text transform="translate(12 {cy:.1}) rotate(-90)" text-anchor="middle">{yl}</text></g>"#,
            cx = (self.left + self.w) / 2.0,
            by = self.h - 4.0,
            cy = (self.h - self.bottom) / 2.0 + 11.0,
            xl = esc(xl),
            yl = esc(yl)
        );
    }

    /// A polyline through data points (points outside the axes are clipped by the frame).
    pub fn line(&mut self, pts: &[(f64, f64)], color: &str, width: f64, dash: bool) {
        let mut d = String::new();
        for &(x, y) in pts.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
            let _ = write!(d, "{:.1},{:.1} ", self.px(x), self.py(y));
        }
        let _ = write!(
            self.out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="{width}"{dash} points="{d}"/>"#,
            dash = if dash {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            },
            d = d.trim_end()
        );
    }

    /// A filled rectangle between data coordinates.
    pub fn rect(&mut self, x0: f64, x1: f64, y0: f64, y1: f64, color: &str, tip: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let (c, d) = (self.py(y1), self.py(y0));
        let _ = write!(
            self.out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"#,
            a.min(b),
            c.min(d),
            (b - a).abs().max(0.5),
            (d - c).abs(),
            esc(tip)
        );
    }

    /// A vertical line at data x with a label beside its top: right of the line, or left of it
    /// near the right edge, one text row lower when it would overlap an earlier label.
    pub fn vline(&mut self, x: f64, color: &str, label: &str) {
        let p = self.px(x);
        let lw = text_width(label, 11.0);
        let (x0, anchor) = if p + 3.0 + lw <= self.w - 2.0 {
            (p + 3.0, "start")
        } else {
            (p - 3.0 - lw, "end")
        };
        let x1 = x0 + lw;
        let row = (0..)
            .find(|r| {
                !self
                    .labels
                    .iter()
                    .any(|&(a, b, lr)| lr == *r && a < x1 + 4.0 && x0 < b + 4.0)
            })
            .unwrap_or(0);
        self.labels.push((x0, x1, row));
        let _ = write!(
            self.out,
            r#"<line x1="{p:.1}" y1="{top}" x2="{p:.1}" y2="{y:.1}" stroke="{color}" stroke-dasharray="2 2"/><text x="{tx:.1}" y="{ty:.1}" fill="{color}" text-anchor="{anchor}">{l}</text>"#,
            top = self.top,
            y = self.h - self.bottom,
            tx = if anchor == "start" { x0 } else { x1 },
            ty = self.top + 10.0 + 12.0 * row as f64,
            l = esc(label)
        );
    }

    /// Closes the SVG.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// A colour on a white→blue scale for t in [0, 1].
pub fn blue(t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let r = (247.0 - t * (247.0 - 8.0)) as u8;
    let g = (251.0 - t * (251.0 - 48.0)) as u8;
    let b = (255.0 - t * (255.0 - 107.0)) as u8;
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Fill of heat-map cells without a value.
pub const MISSING_FILL: &str = "#d9d9d9";

/// A square heat map of `m` with row/column labels (shortened, full names in tooltips) and a
/// colour legend. Finite values are coloured linearly from `range.0` (white) to `range.1`
/// (dark blue); NaN cells are grey and described by `missing(i, j)` (in the tooltip, and in the
/// legend when any occurs).
pub fn heatmap(
    labels: &[String],
    m: &[Vec<f64>],
    title: &str,
    range: (f64, f64),
    missing: &dyn Fn(usize, usize) -> String,
) -> String {
    let n = labels.len();
    let cell = (420.0 / n.max(1) as f64).clamp(14.0, 48.0);
    let short = short_labels(labels, 36);
    let lab_w = 10.0
        + short
            .iter()
            .map(|s| text_width(s, 11.0))
            .fold(8.0, f64::max);
    let (lo, hi) = range;
    let scale = |v: f64| {
        if hi > lo { (v - lo) / (hi - lo) } else { 1.0 }
    };
    let any_missing = m.iter().flatten().any(|v| !v.is_finite());
    let grid = cell * n as f64;
    let top = 24.0 + lab_w;
    let legend_y = top + grid + 16.0;
    let w = (lab_w + grid + 20.0).max(if any_missing { 430.0 } else { 260.0 });
    let h = legend_y + 40.0;
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img"><title>{t}</title><rect width="{w:.0}" height="{h:.0}" fill="#fff"/><text x="{tx:.1}" y="14" text-anchor="middle" class="t">{t}</text>"##,
        t = esc(title),
        tx = w / 2.0
    );
    for (i, l) in short.iter().enumerate() {
        let y = top + cell * i as f64 + cell / 2.0 + 4.0;
        let _ = write!(
            o,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="end"><title>{full}</title>{l}</text>"#,
            x = lab_w - 4.0,
            full = esc(&labels[i]),
            l = esc(l)
        );
        let x = lab_w + cell * i as f64 + cell / 2.0 + 4.0;
        let _ = write!(
            o,
            r#"<text transform="translate({x:.1} {y:.1}) rotate(-90)" text-anchor="start"><title>{full}</title>{l}</text>"#,
            y = top - 4.0,
            full = esc(&labels[i]),
            l = esc(l)
        );
    }
    for (i, row) in m.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let (x, y) = (lab_w + cell * j as f64, top + cell * i as f64);
            let (fill, tip, text) = if v.is_finite() {
                let t = scale(v);
                (
                    blue(t),
                    tick_label(v),
                    (format!("{v:.3}"), if t > 0.6 { "#fff" } else { "#222" }),
                )
            } else {
                (
                    MISSING_FILL.to_string(),
                    missing(i, j),
                    ("–".to_string(), "#444"),
                )
            };
            let _ = write!(
                o,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{c:.1}" height="{c:.1}" fill="{fill}" stroke="#fff"><title>{a} vs {b}: {tip}</title></rect>"##,
                c = cell,
                a = esc(&labels[i]),
                b = esc(&labels[j]),
                tip = esc(&tip)
            );
            if cell >= 34.0 {
                let _ = write!(
                    o,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{}">{}</text>"#,
                    x + cell / 2.0,
                    y + cell / 2.0 + 4.0,
                    text.1,
                    esc(&text.0)
                );
            }
        }
    }
    // Legend: the colour ramp with its end values, and the grey of cells without a value.
    let (lx, lw) = (10.0, 160.0);
    let steps = 16;
    for k in 0..steps {
        let _ = write!(
            o,
            r#"<rect x="{:.1}" y="{legend_y:.1}" width="{:.1}" height="12" fill="{}"/>"#,
            lx + lw * k as f64 / steps as f64,
            lw / steps as f64 + 0.5,
            blue((k as f64 + 0.5) / steps as f64)
        );
    }
    let _ = write!(
        o,
        r##"<rect x="{lx}" y="{legend_y:.1}" width="{lw}" height="12" fill="none" stroke="#999"/><text x="{lx}" y="{ly:.1}" text-anchor="start">{a}</text><text x="{rx}" y="{ly:.1}" text-anchor="end">{b}</text>"##,
        ly = legend_y + 26.0,
        rx = lx + lw,
        a = esc(&tick_label(lo)),
        b = esc(&tick_label(hi))
    );
    if any_missing {
        let gx = lx + lw + 24.0;
        let _ = write!(
            o,
            r##"<rect x="{gx}" y="{legend_y:.1}" width="12" height="12" fill="{MISSING_FILL}" stroke="#999"/><text x="{tx}" y="{ty:.1}">no shared tensors</text>"##,
            tx = gx + 18.0,
            ty = legend_y + 10.0
        );
    }
    o.push_str("</svg>");
    o
}

/// `s` cut to `n` characters with an ellipsis in the middle: the end is kept (names and paths
/// differ there), and so is the start up to its last number when that fits (the layer index
/// of `encoder.layer.3.attention.self.query.weight`), else about its first 40 %.
pub fn shorten(s: &str, n: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    if c.len() <= n {
        return s.to_string();
    }
    if n < 8 {
        let tail: String = c[c.len() - n.saturating_sub(1)..].iter().collect();
        return format!("…{tail}");
    }
    let keep = n - 1;
    let by_number = c
        .iter()
        .rposition(|ch| ch.is_ascii_digit())
        .map(|d| d + 1)
        .filter(|&h| h <= keep * 2 / 3 && h + (keep - h) < c.len());
    let head = by_number.unwrap_or(keep * 2 / 5);
    let tail = keep - head;
    let a: String = c[..head].iter().collect();
    let b: String = c[c.len() - tail..].iter().collect();
    format!("{a}…{b}")
}

/// The directory prefix every label shares (up to and including its last `/`), when there
/// are two labels or more: `/tmp/zoo/models/` for `/tmp/zoo/models/a/x`, `/tmp/zoo/models/b/x`.
pub fn common_dir(labels: &[String]) -> &str {
    let Some(first) = labels.first() else {
        return "";
    };
    if labels.len() < 2 {
        return "";
    }
    let mut n = first.len();
    for l in &labels[1..] {
        n = n.min(
            first
                .bytes()
                .zip(l.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    match first[..n].rfind('/') {
        Some(k) if first.is_char_boundary(k + 1) => &first[..=k],
        _ => "",
    }
}

/// Labels for a set of paths: the fewest trailing path components that still tell every
/// label apart (`…/base-0000/epoch_8.safetensors`), then shortened to `n` characters.
fn short_labels(labels: &[String], n: usize) -> Vec<String> {
    let tail = |l: &str, k: usize| -> usize {
        // Byte offset where the last k components start (0 when l has no more than k).
        let mut at = l.len();
        for _ in 0..k {
            match l[..at].rfind('/') {
                Some(p) => at = p,
                None => return 0,
            }
        }
        at + 1
    };
    let max_k = labels
        .iter()
        .map(|l| l.matches('/').count() + 1)
        .max()
        .unwrap_or(1);
    let k = (1..=max_k)
        .find(|&k| {
            let set: std::collections::BTreeSet<&str> =
                labels.iter().map(|l| &l[tail(l, k)..]).collect();
            set.len() == labels.len()
        })
        .unwrap_or(max_k);
    labels
        .iter()
        .map(|l| {
            let at = tail(l, k);
            if at == 0 {
                shorten(l, n)
            } else {
                shorten(&format!("…/{}", &l[at..]), n)
            }
        })
        .collect()
}

/// A layered drawing of a forest: `parent[i]` for each node, labels, edge captions.
pub fn tree(labels: &[String], parent: &[Option<usize>], caption: &[String]) -> String {
    let n = labels.len();
    // Depth of each node.
    let mut depth = vec![0usize; n];
    for (i, d) in depth.iter_mut().enumerate() {
        let (mut u, mut k) = (i, 0);
        while let Some(p) = parent[u] {
            u = p;
            k += 1;
            if k > n {
                break;
            }
        }
        *d = k;
    }
    // Leaves get consecutive slots in depth-first order; parents sit above their children.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match *p {
            Some(p) => children[p].push(i),
            None => roots.push(i),
        }
    }
    let mut xslot = vec![0f64; n];
    let mut next = 0f64;
    fn place(v: usize, ch: &[Vec<usize>], x: &mut [f64], next: &mut f64, guard: usize) {
        if ch[v].is_empty() || guard == 0 {
            x[v] = *next;
            *next += 1.0;
            return;
        }
        for &c in &ch[v] {
            place(c, ch, x, next, guard - 1);
        }
        x[v] = (x[ch[v][0]] + x[*ch[v].last().unwrap()]) / 2.0;
    }
    for &r in &roots {
        place(r, &children, &mut xslot, &mut next, n + 1);
        next += 0.5;
    }
    let short = short_labels(labels, 36);
    let box_w = 12.0
        + short
            .iter()
            .map(|s| text_width(s, 11.0))
            .fold(28.0, f64::max);
    let (sx, sy) = (box_w + 16.0, 74.0);
    let maxd = depth.iter().copied().max().unwrap_or(0) as f64;
    let (w, h) = ((next.max(1.0)) * sx + 20.0, (maxd + 1.0) * sy + 30.0);
    let pos = |i: usize| {
        (
            10.0 + xslot[i] * sx + box_w / 2.0,
            20.0 + depth[i] as f64 * sy,
        )
    };
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img"><title>lineage</title><rect width="{w:.0}" height="{h:.0}" fill="#fff"/>"##
    );
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = *p {
            let ((x0, y0), (x1, y1)) = (pos(p), pos(i));
            let _ = write!(
                o,
                r##"<line x1="{x0:.1}" y1="{a:.1}" x2="{x1:.1}" y2="{y1:.1}" stroke="#555" marker-end="url(#arr)"/><text x="{mx:.1}" y="{my:.1}" class="s" text-anchor="{anchor}">{c}</text>"##,
                a = y0 + 24.0,
                // Beside the arrow's head, on the side the arrow does not come from, so the
                // captions of siblings never run into each other.
                mx = if x0 > x1 + 0.5 { x1 - 5.0 } else { x1 + 5.0 },
                anchor = if x0 > x1 + 0.5 { "end" } else { "start" },
                my = y1 - 7.0,
                c = esc(&caption[i])
            );
        }
    }
    for i in 0..n {
        let (x, y) = pos(i);
        // A model with neither parent nor child: dashed, white, captioned.
        let alone = parent[i].is_none() && children[i].is_empty();
        let (fill, dash, tip) = if alone {
            (
                "#fff",
                r#" stroke-dasharray="4 3""#,
                " (no edge: unrelated to every other model)",
            )
        } else if parent[i].is_none() {
            ("#dbe8ff", "", " (root)")
        } else {
            ("#f4f6fa", "", "")
        };
        let _ = write!(
            o,
            r##"<rect x="{:.1}" y="{y:.1}" width="{box_w:.1}" height="24" rx="4" fill="{fill}" stroke="#335"{dash}><title>{}{tip}</title></rect><text x="{x:.1}" y="{:.1}" text-anchor="middle"><title>{}{tip}</title>{}</text>"##,
            x - box_w / 2.0,
            esc(&labels[i]),
            y + 16.0,
            esc(&labels[i]),
            esc(&short[i])
        );
        if alone {
            let _ = write!(
                o,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" class="s">no edge</text>"#,
                y + 38.0
            );
        }
    }
    o.push_str(r##"<defs><marker id="arr" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs></svg>"##);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_ticks() {
        assert_eq!(esc("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
        let a = Axis::fit([0.3, 42.0].into_iter(), true);
        assert_eq!((a.lo, a.hi), (0.1, 100.0));
        assert_eq!(a.ticks(7), vec![0.1, 1.0, 10.0, 100.0]);
        let l = Axis::fit([0.0, 9.0].into_iter(), false);
        assert!(l.ticks(7).contains(&0.0));
        assert_eq!(shorten("abcdef", 4), "…def");
        // The layer index survives; the end is kept.
        let s = shorten("encoder.layer.3.attention.self.query.weight", 30);
        assert_eq!(s.chars().count(), 30);
        assert_eq!(s, "encoder.layer.3…f.query.weight");
        assert_eq!(shorten("abcdefghijklmnopqrst", 11), "abcd…opqrst");
        let l: Vec<String> = ["/z/m/base-0/e.st", "/z/m/ft-1/e.st", "/z/mx"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(common_dir(&l), "/z/");
        assert_eq!(common_dir(&l[..2]), "/z/m/");
        assert_eq!(short_labels(&l[..2], 30), ["…/base-0/e.st", "…/ft-1/e.st"]);
        assert_eq!(
            short_labels(&l, 30),
            ["…/base-0/e.st", "…/ft-1/e.st", "…/z/mx"]
        );
        let same_dir: Vec<String> = ["a/x.st", "a/y.st"].iter().map(|s| s.to_string()).collect();
        assert_eq!(short_labels(&same_dir, 30), ["…/x.st", "…/y.st"]);
        assert_eq!(common_dir(&l[..1]), "");
    }

    #[test]
    fn tree_places_children_below_parents() {
        let labels: Vec<String> = ["r", "a", "b"].iter().map(|s| s.to_string()).collect();
        let svg = tree(
            &labels,
            &[None, Some(0), Some(0)],
            &["".into(), "x".into(), "y".into()],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<line").count(), 2);
    }
}
