//! The analysis report: `report.md` for people, `report.json` for machines, and SVG plots
//! (per-layer traces, the frontier with the chosen point, accuracy against size).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::Serialize;

use crate::allocate::{ActOptions, LayerOptions};

/// A measured configuration for the accuracy-vs-size plot.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub label: String,
    pub weight_bytes: usize,
    pub arena_bytes: usize,
    pub metric: String,
    pub value: f64,
    /// The metric before the whole-network refinement (`value` is after it), when refined.
    pub before_refinement: Option<f64>,
    /// Weight bits per layer, in the order of the report's layer table.
    pub bits: Vec<u8>,
}

/// A whole-network refinement of a measured configuration (`crate::refine`).
#[derive(Debug, Clone, Serialize)]
pub struct RefinementReport {
    pub label: String,
    pub steps: usize,
    pub seconds: f64,
    /// Distillation loss on the calibration set before and after.
    pub loss_before: f64,
    pub loss_after: f64,
    /// The refinement did not lower the loss and the unrefined model was kept.
    pub kept_start: bool,
    /// ΣΩ of the configuration, for a point of HAWQ's frontier.
    pub omega: Option<f64>,
}

/// How well HAWQ's ΣΩ (Ω measured on the weights GPTQ and learned rounding give, before any
/// refinement) orders the refined frontier points: Spearman's rank correlation of ΣΩ with the
/// held-out distillation loss before and after refinement, over `points` points. ρ near 1
/// after refinement says Ω before it is a faithful proxy for what the refined model holds.
#[derive(Debug, Clone, Serialize)]
pub struct OmegaAgainstRefined {
    pub points: usize,
    pub rho_before: f64,
    pub rho_after: f64,
}

impl OmegaAgainstRefined {
    /// `None` below three HAWQ frontier points.
    pub fn of(refinements: &[RefinementReport]) -> Option<OmegaAgainstRefined> {
        let points: Vec<(f64, f64, f64)> =
            refinements.iter().filter_map(|r| Some((r.omega?, r.loss_before, r.loss_after))).collect();
        if points.len() < 3 {
            return None;
        }
        let omega: Vec<f64> = points.iter().map(|p| p.0).collect();
        let before: Vec<f64> = points.iter().map(|p| p.1).collect();
        let after: Vec<f64> = points.iter().map(|p| p.2).collect();
        Some(OmegaAgainstRefined {
            points: points.len(),
            rho_before: spearman(&omega, &before),
            rho_after: spearman(&omega, &after),
        })
    }
}

/// Spearman's rank correlation (ties take their average rank); 0 when either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (crate::eval::average_ranks(a), crate::eval::average_ranks(b));
    let n = ra.len().min(rb.len()) as f64;
    let mean = (n + 1.0) / 2.0;
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - mean) * (y - mean);
        va += (x - mean).powi(2);
        vb += (y - mean).powi(2);
    }
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub loss: String,
    pub trace_method: String,
    pub trace_seconds: f64,
    pub layers: Vec<LayerOptions>,
    pub activations: Vec<ActOptions>,
    /// (weight bytes, ΣΩ) of every frontier point.
    pub frontier: Vec<(usize, f64)>,
    /// Index into `frontier` of the chosen configuration, if one was chosen.
    pub chosen: Option<usize>,
    pub chosen_bits: Option<Vec<u8>>,
    pub measured: Vec<Measured>,
    /// Refinements of the measured configurations (`hawq analyze --refine-steps`).
    pub refinements: Vec<RefinementReport>,
    /// ΣΩ against the refined frontier points' losses (three or more refined HAWQ points).
    pub omega_against_refined: Option<OmegaAgainstRefined>,
}

fn short(name: &str) -> String {
    // TensorFlow names are long paths joined by ';': keep the last segment's tail.
    let last = name.rsplit(';').next().unwrap_or(name);
    if last.chars().count() > 36 {
        format!("…{}", last.chars().rev().take(35).collect::<Vec<_>>().into_iter().rev().collect::<String>())
    } else {
        last.to_string()
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HAWQ-V2 analysis of `{}`\n", self.model);
        let _ = writeln!(
            s,
            "Loss: {}. Hessian traces and Ω: {} in {:.2} s. Ω_i(b) = ΔW_iᵀ H_i ΔW_i for the weights the model \
             holds at b bits (ΔW_i = Q_b(W_i) − W_i, exact), or HAWQ-V2's Σ_c Tr(H_c)/n_c · ‖ΔW_c‖² where it is not \
             measured.\n",
            self.loss, self.trace_method, self.trace_seconds
        );
        let _ = writeln!(s, "![per-layer traces](traces.svg)\n");
        let _ = writeln!(s, "## Weight layers\n");
        let _ = writeln!(s, "| # | layer | params | Tr(H)/n | rel. std. err. | Ω(2) | Ω(4) | Ω(8) | chosen |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (k, l) in self.layers.iter().enumerate() {
            let rel = if l.trace.average != 0.0 { l.trace.std_error / l.trace.average.abs() } else { 0.0 };
            let chosen = self.chosen_bits.as_ref().and_then(|b| b.get(k)).map_or("-".into(), |b| b.to_string());
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {:.4e} | {:.2}% | {:.3e} | {:.3e} | {:.3e} | {} |",
                k,
                short(&l.name),
                l.params,
                l.trace.average,
                100.0 * rel,
                l.omega[0],
                l.omega[1],
                l.omega[2],
                chosen
            );
        }
        if !self.activations.is_empty() {
            let _ = writeln!(s, "\n## Activations\n");
            let _ = writeln!(s, "| tensor | elements | Tr(H)/n | rel. std. err. | Ω(4) | Ω(8) |");
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
            for a in &self.activations {
                let rel = if a.trace.average != 0.0 { a.trace.std_error / a.trace.average.abs() } else { 0.0 };
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {:.4e} | {:.2}% | {:.3e} | {:.3e} |",
                    short(&a.name),
                    a.elements,
                    a.trace.average,
                    100.0 * rel,
                    a.omega[0],
                    a.omega[1]
                );
            }
        }
        let _ = writeln!(s, "\n## Pareto frontier (weight bytes against ΣΩ)\n");
        let _ = writeln!(s, "![frontier](frontier.svg)\n");
        let _ = writeln!(
            s,
            "{} non-dominated configurations from {} to {} bytes.",
            self.frontier.len(),
            self.frontier.first().map_or(0, |p| p.0),
            self.frontier.last().map_or(0, |p| p.0)
        );
        if let Some(c) = self.chosen {
            let (size, omega) = self.frontier[c];
            let _ = writeln!(s, "Chosen: {size} bytes, ΣΩ = {omega:.4e}.");
        }
        if !self.measured.is_empty() {
            let _ = writeln!(s, "\n## Measured on the bit-exact runtime\n");
            let _ = writeln!(s, "![accuracy vs size](accuracy.svg)\n");
            let _ = writeln!(
                s,
                "| configuration | weight bytes | arena bytes | {} | before refinement | weight bits per layer |",
                self.measured[0].metric
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
            for m in &self.measured {
                let bits: Vec<String> = m.bits.iter().map(|b| b.to_string()).collect();
                let before = m.before_refinement.map_or_else(|| "—".to_string(), |v| format!("{v:.4}"));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.4} | {} | {} |",
                    m.label,
                    m.weight_bytes,
                    m.arena_bytes,
                    m.value,
                    before,
                    bits.join(" ")
                );
            }
        }
        if let Some(c) = &self.omega_against_refined {
            let _ = writeln!(
                s,
                "\nΣΩ against the held-out distillation loss over {} refined frontier points: Spearman ρ {:.2} before \
                 refinement, {:.2} after.",
                c.points, c.rho_before, c.rho_after
            );
        }
        s
    }

    /// Writes report.md, report.json and the SVG plots into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the report folder", dir.display()))?;
        crate::emit::write_atomic(&dir.join("report.md"), self.markdown().as_bytes())?;
        crate::emit::write_atomic(&dir.join("report.json"), serde_json::to_string_pretty(self)?.as_bytes())?;
        self.plot_traces(&dir.join("traces.svg")).map_err(|e| anyhow::anyhow!("traces.svg: {e}"))?;
        self.plot_frontier(&dir.join("frontier.svg")).map_err(|e| anyhow::anyhow!("frontier.svg: {e}"))?;
        if !self.measured.is_empty() {
            self.plot_accuracy(&dir.join("accuracy.svg")).map_err(|e| anyhow::anyhow!("accuracy.svg: {e}"))?;
        }
        Ok(())
    }

    fn plot_traces(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let values: Vec<f64> = self.layers.iter().map(|l| l.trace.average.max(1e-12)).collect();
        let (lo, hi) = values.iter().fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
        let n = values.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("Average Hessian trace per weight layer (log scale, bars = ±2 std. err.)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, (lo / 3.0..hi * 3.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("layer #")
            .y_desc("Tr(H)/n")
            .x_labels(n.min(30))
            .x_label_formatter(&|x| format!("{}", x.round() as i64))
            .draw()?;
        chart.draw_series(values.iter().enumerate().map(|(i, &v)| {
            Rectangle::new([(i as f64 - 0.35, lo / 3.0), (i as f64 + 0.35, v)], BLUE.mix(0.6).filled())
        }))?;
        chart.draw_series(self.layers.iter().enumerate().filter(|(_, l)| l.trace.std_error > 0.0).map(|(i, l)| {
            let a = (l.trace.average - 2.0 * l.trace.std_error).max(lo / 3.0);
            let b = l.trace.average + 2.0 * l.trace.std_error;
            PathElement::new(vec![(i as f64, a), (i as f64, b)], BLACK.stroke_width(2))
        }))?;
        root.present()?;
        Ok(())
    }

    fn plot_frontier(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let pts: Vec<(f64, f64)> = self.frontier.iter().map(|&(s, o)| (s as f64 / 1024.0, o.max(1e-12))).collect();
        let (x0, x1) = pts.iter().fold((f64::INFINITY, 0f64), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y0, y1) = pts.iter().fold((f64::INFINITY, 0f64), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let mut chart = ChartBuilder::on(&root)
            .caption("Pareto frontier: weight size against total perturbation ΣΩ", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0 * 0.95..x1 * 1.05, (y0 / 2.0..y1 * 2.0).log_scale())?;
        chart.configure_mesh().x_desc("weight KiB").y_desc("ΣΩ").draw()?;
        chart.draw_series(LineSeries::new(pts.iter().copied(), BLUE.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 2, BLUE.filled())))?;
        if let Some(c) = self.chosen {
            let p = pts[c];
            chart
                .draw_series(std::iter::once(Circle::new(p, 7, RED.filled())))?
                .label("chosen")
                .legend(|(x, y)| Circle::new((x, y), 5, RED.filled()));
            chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
        }
        root.present()?;
        Ok(())
    }

    fn plot_accuracy(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let xs: Vec<f64> = self.measured.iter().map(|m| m.weight_bytes as f64 / 1024.0).collect();
        let ys: Vec<f64> = self.measured.iter().map(|m| m.value).collect();
        let (x0, x1) = xs.iter().fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
        let (y0, y1) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let pad = ((y1 - y0) * 0.1).max(0.01);
        let metric = self.measured[0].metric.clone();
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{metric} against weight size (bit-exact integer runtime)"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0 * 0.9..x1 * 1.1, y0 - pad..y1 + pad)?;
        chart.configure_mesh().x_desc("weight KiB").y_desc(metric).draw()?;
        let hawq: Vec<(f64, f64)> = self
            .measured
            .iter()
            .zip(xs.iter().zip(&ys))
            .filter(|(m, _)| m.label.starts_with("hawq"))
            .map(|(_, (&x, &y))| (x, y))
            .collect();
        chart
            .draw_series(LineSeries::new(hawq.iter().copied(), BLUE.stroke_width(2)))?
            .label("HAWQ frontier")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        chart.draw_series(hawq.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;
        let others: Vec<(f64, f64, String)> = self
            .measured
            .iter()
            .zip(xs.iter().zip(&ys))
            .filter(|(m, _)| !m.label.starts_with("hawq"))
            .map(|(m, (&x, &y))| (x, y, m.label.clone()))
            .collect();
        chart
            .draw_series(others.iter().map(|(x, y, _)| TriangleMarker::new((*x, *y), 6, RED.filled())))?
            .label("baselines")
            .legend(|(x, y)| TriangleMarker::new((x, y), 5, RED.filled()));
        chart.draw_series(
            others.iter().map(|(x, y, l)| Text::new(l.clone(), (*x, *y), ("sans-serif", 12).into_font())),
        )?;
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
        root.present()?;
        Ok(())
    }
}

/// The bit widths of the frontier's layers as a compact string: `8 4 4 2 ...`.
pub fn bits_string(bits: &[u8]) -> String {
    bits.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(" ")
}

/// `s` cut to `n` characters with an ellipsis, for table columns.
pub fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(s.chars().count() + 1 - n).collect();
        format!("…{tail}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spearman_ranks_with_ties() {
        assert_eq!(super::spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]), 1.0);
        assert_eq!(super::spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]), -1.0);
        assert_eq!(super::spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), 0.0);
        // Ties at their average rank: ranks (1.5, 1.5, 3) against (1, 2, 3).
        let rho = super::spearman(&[5.0, 5.0, 9.0], &[1.0, 2.0, 3.0]);
        assert!((rho - 0.75f64.sqrt()).abs() < 1e-12, "{rho}");
        // Monotone, not linear: rank correlation 1.
        assert_eq!(super::spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 1000.0]), 1.0);
    }
}
