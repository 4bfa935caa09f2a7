//! What a run reports about sparsity: per tensor, its nonzeros and density and (for weights)
//! its all-zero rows and columns; totals; test accuracy. Printed as a table, written as
//! `report.json`, and drawn with the metrics as `curves.svg`.

use serde_json::{json, Value};
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub struct TensorReport {
    pub name: String,
    pub shape: Vec<u64>,
    pub numel: u64,
    /// Values that are not exactly zero (NaN and infinities included: see `nonfinite`).
    pub nonzeros: u64,
    /// NaN and infinite values, reported apart so that a broken tensor never passes for a
    /// dense one.
    pub nonfinite: u64,
    /// Rows (slices along axis 0: output neurons, filters) that are entirely zero.
    pub zero_rows: Option<u64>,
    /// Columns (slices along axis 1: inputs, channels) that are entirely zero.
    pub zero_cols: Option<u64>,
}

impl TensorReport {
    pub fn new(name: &str, shape: &[u64], values: &[f32]) -> TensorReport {
        let nonzeros = values.iter().filter(|&&v| v != 0.0).count() as u64;
        let nonfinite = values.iter().filter(|v| !v.is_finite()).count() as u64;
        let (mut zero_rows, mut zero_cols) = (None, None);
        let numel = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        if shape.len() >= 2 && values.is_empty() {
            // An empty tensor: every row and column of it is (vacuously) zero, counted
            // without walking them (a [2^40, 0] tensor has 2^40 empty rows).
            zero_rows = Some(shape[0]);
            zero_cols = Some(shape[1]);
        } else if shape.len() >= 2 && numel == Some(values.len() as u64) {
            let (rows, cols) = (shape[0] as usize, shape[1] as usize);
            let inner = values.len() / rows / cols;
            let at = |r: usize, c: usize, k: usize| values[(r * cols + c) * inner + k];
            let row_zero = |r: usize| (0..cols).all(|c| (0..inner).all(|k| at(r, c, k) == 0.0));
            let col_zero = |c: usize| (0..rows).all(|r| (0..inner).all(|k| at(r, c, k) == 0.0));
            zero_rows = Some((0..rows).filter(|&r| row_zero(r)).count() as u64);
            zero_cols = Some((0..cols).filter(|&c| col_zero(c)).count() as u64);
        }
        TensorReport {
            name: name.to_string(),
            shape: shape.to_vec(),
            numel: values.len() as u64,
            nonzeros,
            nonfinite,
            zero_rows,
            zero_cols,
        }
    }

    pub fn density(&self) -> f64 {
        self.nonzeros as f64 / self.numel.max(1) as f64
    }
}

/// The sparsity of a model at one point of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The phase that just ended; `None` for the end of the run.
    pub phase: Option<String>,
    pub tensors: Vec<TensorReport>,
    pub test_accuracy: Option<f64>,
    /// On the samples held out of the training set (`validation N`), where the spec has them.
    pub validation_accuracy: Option<f64>,
}

impl Report {
    pub fn totals(&self) -> (u64, u64) {
        self.tensors.iter().fold((0, 0), |(n, nz), t| (n + t.numel, nz + t.nonzeros))
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let title = match &self.phase {
            Some(p) => format!("after phase `{p}`"),
            None => "at the end of the run".to_string(),
        };
        // Names longer than 60 characters are shortened in the middle.
        let shown = |name: &str| -> String {
            let n = name.chars().count();
            if n <= 60 {
                return name.to_string();
            }
            let head: String = name.chars().take(28).collect();
            let tail: String = name.chars().skip(n - 28).collect();
            format!("{head}…{tail}")
        };
        let w = self.tensors.iter().map(|t| shown(&t.name).chars().count()).max().unwrap_or(0).max(6);
        let _ = writeln!(out, "sparsity {title}");
        let _ = writeln!(
            out,
            "  {:<w$} {:>16} {:>12} {:>12} {:>8} {:>10} {:>10}",
            "tensor", "shape", "nonzero", "of", "density", "zero rows", "zero cols"
        );
        for t in &self.tensors {
            let shape = format!("[{}]", t.shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
            let groups = |g: Option<u64>, axis: usize| g.map_or("-".to_string(), |z| format!("{z}/{}", t.shape[axis]));
            let _ = writeln!(
                out,
                "  {:<w$} {:>16} {:>12} {:>12} {:>7.2}% {:>10} {:>10}",
                shown(&t.name),
                shape,
                t.nonzeros,
                t.numel,
                t.density() * 100.0,
                groups(t.zero_rows, 0),
                groups(t.zero_cols, 1)
            );
        }
        let (n, nz) = self.totals();
        let _ = writeln!(
            out,
            "  {:<w$} {:>16} {:>12} {:>12} {:>7.2}%",
            "total",
            "",
            nz,
            n,
            nz as f64 / n.max(1) as f64 * 100.0
        );
        for t in self.tensors.iter().filter(|t| t.nonfinite > 0) {
            let _ = writeln!(
                out,
                "  warning: {} holds {} NaN or infinite values (counted as nonzero)",
                shown(&t.name),
                t.nonfinite
            );
        }
        if let Some(a) = self.validation_accuracy {
            let _ = writeln!(out, "  validation accuracy {:.2}%", a * 100.0);
        }
        if let Some(a) = self.test_accuracy {
            let _ = writeln!(out, "  test accuracy {:.2}%", a * 100.0);
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let (n, nz) = self.totals();
        json!({
            "phase": self.phase,
            "test_accuracy": self.test_accuracy,
            "validation_accuracy": self.validation_accuracy,
            "parameters": n,
            "nonzeros": nz,
            "density": nz as f64 / n.max(1) as f64,
            "tensors": self.tensors.iter().map(|t| json!({
                "name": t.name,
                "shape": t.shape,
                "numel": t.numel,
                "nonzeros": t.nonzeros,
                "nonfinite": t.nonfinite,
                "density": t.density(),
                "zero_rows": t.zero_rows,
                "zero_cols": t.zero_cols,
            })).collect::<Vec<_>>(),
        })
    }
}

/// `curves.svg` from metrics.jsonl's lines (`plots::curves_svg`).
pub fn curves_svg(metrics: &[Value]) -> String {
    crate::plots::curves_svg(metrics)
}

/// A run folder's report.json, parsed; `None` where it is missing or not JSON.
pub fn read_json(dir: &std::path::Path) -> Option<Value> {
    serde_json::from_slice(&crate::files::read_regular(&dir.join("report.json"), 1 << 30).ok()?).ok()
}

/// Each `then shrink` a run's report.json records, in order.
pub fn shrinks(dir: &std::path::Path) -> Vec<Value> {
    read_json(dir).and_then(|r| r["shrink"].as_array().cloned()).unwrap_or_default()
}

/// Rebuilds the final report of a finished or interrupted run from its folder: the tensors of
/// `model.safetensors` (in file order) and the last test accuracy in `metrics.jsonl`.
pub fn from_run_dir(dir: &std::path::Path) -> Result<(Report, Vec<Value>), String> {
    let model = dir.join("model.safetensors");
    let bytes = crate::files::read_safetensors(&model)?;
    let tensors = tensor_reports(&model, &bytes)?;
    let metrics = read_metrics(dir);
    let test_accuracy = metrics.last().and_then(|m| m["test_accuracy"].as_f64());
    let validation_accuracy = metrics.last().and_then(|m| m["validation_accuracy"].as_f64());
    Ok((Report { phase: None, tensors, test_accuracy, validation_accuracy }, metrics))
}

/// The lines of a run folder's metrics.jsonl (those that parse; none where it is missing).
pub fn read_metrics(dir: &std::path::Path) -> Vec<Value> {
    let text = crate::files::read_regular(&dir.join("metrics.jsonl"), 1 << 30).unwrap_or_default();
    String::from_utf8_lossy(&text).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The sparsity of every parameter of a safetensors file's bytes, in file order: buffers
/// (batch norm's running statistics and counter) are not parameters, as in PyTorch's
/// `parameters()`, and count in no density.
pub fn tensor_reports(model: &std::path::Path, bytes: &[u8]) -> Result<Vec<TensorReport>, String> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("{} is not a safetensors file: {e}", model.display()))?;
    let mut tensors: Vec<(usize, TensorReport)> = Vec::new();
    for (name, t) in st.tensors() {
        if hoyer_front::layers::is_buffer_name(&name) {
            continue;
        }
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(format!("{}: `{name}` is not F32", model.display()));
        }
        let values: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
        let offset = t.data().as_ptr() as usize - bytes.as_ptr() as usize;
        tensors.push((offset, TensorReport::new(&name, &shape, &values)));
    }
    tensors.sort_by_key(|t| t.0);
    Ok(tensors.into_iter().map(|t| t.1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_in_tables() {
        let name = "x".repeat(70_000);
        let r = Report {
            phase: None,
            tensors: vec![TensorReport::new(&name, &[2], &[1.0, f32::NAN])],
            test_accuracy: None,
            validation_accuracy: None,
        };
        let t = r.table();
        assert!(t.len() < 2000 && t.contains('…') && t.contains("NaN"), "{t}");
    }

    #[test]
    fn rows_columns_and_density() {
        // [[1, 0, 0], [0, 0, 0]]: one zero row, two zero columns.
        let t = TensorReport::new("w", &[2, 3], &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!((t.nonzeros, t.zero_rows, t.zero_cols), (1, Some(1), Some(2)));
        assert!((t.density() - 1.0 / 6.0).abs() < 1e-12);
        let b = TensorReport::new("b", &[3], &[0.0, 2.0, 0.0]);
        assert_eq!((b.nonzeros, b.zero_rows, b.zero_cols), (1, None, None));
        let r = Report { phase: None, tensors: vec![t, b], test_accuracy: Some(0.5), validation_accuracy: None };
        assert_eq!(r.totals(), (9, 2));
        assert!(r.table().contains("1/2") && r.table().contains("2/3") && r.table().contains("50.00%"));
    }

    /// Four panels (loss, accuracy, penalty, density), each with its axis labels; the phase
    /// change marked and named, and, where the density fell there, as a prune.
    #[test]
    fn svg_draws_four_labelled_panels() {
        let m: Vec<Value> = (0..4)
            .map(|i| json!({"phase": if i < 2 { "a" } else { "b" }, "train_loss": 1.0 / (i + 1) as f64, "penalty": 0.1,
                "test_accuracy": 0.5 + 0.1 * i as f64, "validation_accuracy": 0.55, "density": if i < 2 { 1.0 } else { 0.3 }}))
            .collect();
        let svg = curves_svg(&m);
        for text in ["loss", "accuracy (%)", "penalty", "nonzero parameters (%)", "epoch", "validation", "prune → b"]
        {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(svg.contains("stroke-dasharray") || svg.matches("<polyline").count() > 4, "no phase mark");
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
