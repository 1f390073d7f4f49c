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

/// An axis: a data range mapped to pixels, linear or log₁₀.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    /// Smallest value shown (in data units; > 0 for log axes).
    pub lo: f64,
    /// Largest value shown.
    pub hi: f64,
    /// Log₁₀ scale.
    pub log: bool,
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
            };
        }
        if log {
            let (a, b) = (lo.log10().floor(), hi.log10().ceil());
            let b = if b <= a { a + 1.0 } else { b };
            Axis {
                lo: 10f64.powf(a),
                hi: 10f64.powf(b),
                log,
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
            }
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.lo.log10().round() as i32,
                self.hi.log10().round() as i32,
            );
            let step = ((b - a) / 6).max(1);
            (a..=b)
                .step_by(step as usize)
                .map(|k| 10f64.powi(k))
                .collect()
        } else {
            let span = self.hi - self.lo;
            let raw = span / 5.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| span / s <= 6.0)
                .unwrap_or(10.0 * mag);
            let start = (self.lo / step).ceil() * step;
            let mut v = Vec::new();
            let mut x = start;
            while x <= self.hi + step * 1e-9 && v.len() < 20 {
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
}

impl Chart {
    /// A new chart with a title and axis labels.
    pub fn new(w: f64, h: f64, x: Axis, y: Axis, title: &str, xl: &str, yl: &str) -> Chart {
        let mut c = Chart {
            out: String::new(),
            w,
            h,
            left: 52.0,
            bottom: 36.0,
            x,
            y,
        };
        let _ = write!(
            c.out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{t}</title><rect width="{w}" height="{h}" fill="#fff"/><text x="{tx:.1}" y="14" text-anchor="middle" class="t">{t}</text>"##,
            t = esc(title),
            tx = w / 2.0
        );
        c.axes(xl, yl);
        c
    }

    /// Pixel x of a data value.
    pub fn px(&self, v: f64) -> f64 {
        self.left + self.x.t(v) * (self.w - self.left - 10.0)
    }

    /// Pixel y of a data value.
    pub fn py(&self, v: f64) -> f64 {
        let top = 22.0;
        self.h - self.bottom - self.y.t(v) * (self.h - self.bottom - top)
    }

    fn axes(&mut self, xl: &str, yl: &str) {
        let (x0, y0) = (self.left, self.h - self.bottom);
        let _ = write!(
            self.out,
            r##"<g class="ax"><line x1="{x0}" y1="{y0}" x2="{x1:.1}" y2="{y0}" stroke="#444"/><line x1="{x0}" y1="22" x2="{x0}" y2="{y0}" stroke="#444"/>"##,
            x1 = self.w - 10.0
        );
        for t in self.x.ticks() {
            let p = self.px(t);
            let _ = write!(
                self.out,
                r##"<line x1="{p:.1}" y1="{y0}" x2="{p:.1}" y2="{y1}" stroke="#444"/><text x="{p:.1}" y="{ty}" text-anchor="middle">{l}</text>"##,
                y1 = y0 + 4.0,
                ty = y0 + 15.0,
                l = esc(&tick_label(t))
            );
        }
        for t in self.y.ticks() {
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

    /// A vertical line at data x with a label.
    pub fn vline(&mut self, x: f64, color: &str, label: &str) {
        let p = self.px(x);
        let _ = write!(
            self.out,
            r#"<line x1="{p:.1}" y1="22" x2="{p:.1}" y2="{y:.1}" stroke="{color}" stroke-dasharray="2 2"/><text x="{tx:.1}" y="32" fill="{color}">{l}</text>"#,
            y = self.h - self.bottom,
            tx = p + 3.0,
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

/// A square heat map of `m` with row/column labels; cell colour from `scale(v)` in [0, 1].
pub fn heatmap(
    labels: &[String],
    m: &[Vec<f64>],
    title: &str,
    scale: &dyn Fn(f64) -> f64,
) -> String {
    let n = labels.len();
    let cell = (420.0 / n.max(1) as f64).clamp(14.0, 48.0);
    let short: Vec<String> = labels.iter().map(|l| shorten(l, 28)).collect();
    let lab_w = 8.0 + 6.5 * short.iter().map(|s| s.chars().count()).max().unwrap_or(1) as f64;
    let (w, h) = (
        lab_w + cell * n as f64 + 20.0,
        lab_w + cell * n as f64 + 30.0,
    );
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" role="img"><title>{t}</title><rect width="{w:.0}" height="{h:.0}" fill="#fff"/><text x="{tx:.1}" y="14" text-anchor="middle" class="t">{t}</text>"##,
        t = esc(title),
        tx = w / 2.0
    );
    let top = 24.0 + lab_w - 8.0;
    for (i, l) in short.iter().enumerate() {
        let y = top + cell * i as f64 + cell / 2.0 + 4.0;
        let _ = write!(
            o,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="end">{l}</text>"#,
            x = lab_w - 4.0,
            l = esc(l)
        );
        let x = lab_w + cell * i as f64 + cell / 2.0 + 4.0;
        let _ = write!(
            o,
            r#"<text transform="translate({x:.1} {y:.1}) rotate(-90)" text-anchor="start">{l}</text>"#,
            y = top - 4.0,
            l = esc(l)
        );
    }
    for (i, row) in m.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let t = scale(v);
            let (x, y) = (lab_w + cell * j as f64, top + cell * i as f64);
            let _ = write!(
                o,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{c:.1}" height="{c:.1}" fill="{f}" stroke="#fff"><title>{a} vs {b}: {v}</title></rect>"##,
                c = cell,
                f = blue(t),
                a = esc(&labels[i]),
                b = esc(&labels[j]),
                v = tick_label(v)
            );
            if cell >= 34.0 {
                let _ = write!(
                    o,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{}">{}</text>"#,
                    x + cell / 2.0,
                    y + cell / 2.0 + 4.0,
                    if t > 0.6 { "#fff" } else { "#222" },
                    esc(&format!("{v:.3}"))
                );
            }
        }
    }
    o.push_str("</svg>");
    o
}

/// `s` cut to `n` characters, keeping the end (paths differ at the end).
pub fn shorten(s: &str, n: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    if c.len() <= n {
        s.to_string()
    } else {
        let tail: String = c[c.len() - (n - 1)..].iter().collect();
        format!("…{tail}")
    }
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
    let short: Vec<String> = labels.iter().map(|l| shorten(l, 22)).collect();
    let box_w = 8.0 + 6.6 * short.iter().map(|s| s.chars().count()).max().unwrap_or(4) as f64;
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
                r##"<line x1="{x0:.1}" y1="{a:.1}" x2="{x1:.1}" y2="{y1:.1}" stroke="#555" marker-end="url(#arr)"/><text x="{mx:.1}" y="{my:.1}" class="s">{c}</text>"##,
                a = y0 + 24.0,
                mx = (x0 + x1) / 2.0 + 4.0,
                my = (y0 + 24.0 + y1) / 2.0,
                c = esc(&caption[i])
            );
        }
    }
    for i in 0..n {
        let (x, y) = pos(i);
        let _ = write!(
            o,
            r##"<rect x="{:.1}" y="{y:.1}" width="{box_w:.1}" height="24" rx="4" fill="{}" stroke="#335"><title>{}</title></rect><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            x - box_w / 2.0,
            if parent[i].is_none() {
                "#dbe8ff"
            } else {
                "#f4f6fa"
            },
            esc(&labels[i]),
            y + 16.0,
            esc(&short[i])
        );
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
        assert_eq!(a.ticks(), vec![0.1, 1.0, 10.0, 100.0]);
        let l = Axis::fit([0.0, 9.0].into_iter(), false);
        assert!(l.ticks().contains(&0.0));
        assert_eq!(shorten("abcdef", 4), "…def");
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
