//! Sweeps and comparisons of finished runs: the grid of `hoyerc sweep` (each point a set of
//! `--set` overrides and a folder name), its scheduler (`branch` from a shared prefix, then
//! `run_all`: each point a process of its own, a few at a time), what each run folder says (test and validation
//! accuracy, nonzero parameters), which runs are Pareto-optimal (no other run is at least
//! as accurate with at most as many nonzeros, and better in one), a table sorted by accuracy
//! and density, `sweep.json`, and `pareto.svg`. Runs are ranked by their validation accuracy
//! where every run has one: choosing by the test set's would tune on it.

use serde_json::{json, Value};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// `PATH=V1,V2,...` as the path and its values.
pub fn parse_axis(text: &str) -> Result<(String, Vec<String>), String> {
    let (path, values) = text.split_once('=').ok_or_else(|| format!("`{text}` is not PATH=V1,V2,..."))?;
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if path.trim().is_empty() || values.is_empty() {
        return Err(format!("`{text}` is not PATH=V1,V2,..."));
    }
    Ok((path.trim().to_string(), values))
}

/// Every combination of the axes' values (the first axis varies slowest), each as
/// `PATH=VALUE` overrides.
pub fn grid(axes: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    let mut points: Vec<Vec<String>> = vec![vec![]];
    for (path, values) in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push(format!("{path}={v}"));
                    q
                })
            })
            .collect();
    }
    points
}

/// A folder name for a point: its overrides as written (`prune.1.sparsity=90%`), one to one.
/// Where a character a file name cannot hold had to be replaced, or the name is too long, a
/// short hash of the overrides follows a `~` (which no name written out holds): `2/1000`
/// and `2*1000` get folders of their own.
pub fn folder_name(overrides: &[String]) -> String {
    const LONGEST: usize = 120;
    let text = overrides.join(",");
    let name: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || "=.,-_+%".contains(c) { c } else { '_' }).collect();
    if name.is_empty() {
        return "base".into();
    }
    if name == text && name.len() <= LONGEST {
        return name;
    }
    // FNV-1a: the same name on every machine and every version of hoyerc.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{}~{:012x}", &name[..name.len().min(LONGEST)], hash >> 16)
}

/// Why the run in `dir` is not a point of this sweep any more, where it is not: it was
/// trained from another spec (`spec_text`, compared token by token: comments and layout may
/// change), from other initial weights than `init` (`--init`'s record,
/// `provenance::init_file`, read once for every folder), or with other `--set` values
/// than `sets` (the sweep's fixed ones and the point's; for a point branched from a shared
/// run, those its own resume gave).
pub fn stale(dir: &Path, spec_text: &str, init: Option<&Value>, sets: &[String]) -> Option<String> {
    let stored = match crate::provenance::read(dir) {
        Ok(stored) => stored?,
        Err(e) => return Some(format!("its record cannot be read ({e})")),
    };
    let old = stored["spec"]["text"].as_str().unwrap_or("");
    if let Some(line) = crate::provenance::changed_line(old, spec_text) {
        return Some(format!("it was trained from another spec (line {line} differs)"));
    }
    let ran_with = crate::provenance::last_overrides(&stored);
    // Only where the run finished: a stopped one resumes with these values anyway.
    if stored["outcome"] == "finished" && ran_with != sets {
        return Some(format!("it was trained with --set {}", ran_with.join(" --set ")));
    }
    let (was, is) = (stored["init"]["crc32"].as_str(), init.and_then(|v| v["crc32"].as_str()));
    (was != is).then(|| match (was, is) {
        (None, _) => "it was trained from its own initial weights, this sweep gives --init".to_string(),
        (_, None) => "it was trained from --init weights, this sweep gives none".to_string(),
        _ => "it was trained from other --init weights".to_string(),
    })
}

/// What one run folder says.
#[derive(Debug, Clone)]
pub struct Point {
    pub label: String,
    pub dir: PathBuf,
    pub test_accuracy: f64,
    pub validation_accuracy: Option<f64>,
    /// Nonzero parameters of the final model (of the shrunk model, after a shrink).
    pub nonzeros: u64,
    /// The final density, a fraction of the spec's model (`metrics.jsonl`).
    pub density: f64,
    /// Whether the run finished (run.json's outcome).
    pub finished: bool,
    /// The widths its last `then shrink` left (report.json), e.g. `784-48-15-10`.
    pub architecture: Option<String>,
}

impl Point {
    pub fn read(label: &str, dir: &Path) -> Result<Point, String> {
        let (report, metrics) = crate::report::from_run_dir(dir)?;
        let last = metrics.last().cloned().unwrap_or(Value::Null);
        Ok(Point {
            label: label.to_string(),
            dir: dir.to_path_buf(),
            test_accuracy: report.test_accuracy.unwrap_or(f64::NAN),
            validation_accuracy: report.validation_accuracy,
            nonzeros: report.tensors.iter().map(|t| t.nonzeros).sum(),
            density: last["density"].as_f64().unwrap_or(f64::NAN),
            finished: finished(dir),
            architecture: shrunk_architecture(dir),
        })
    }

    /// The accuracy that ranks this run among `points` (see `by_validation`).
    fn score(&self, by_validation: bool) -> f64 {
        if by_validation {
            self.validation_accuracy.unwrap_or(f64::NAN)
        } else {
            self.test_accuracy
        }
    }
}

/// The architecture a run's last shrink left, from its report.json.
fn shrunk_architecture(dir: &Path) -> Option<String> {
    Some(crate::report::shrinks(dir).last()?["architecture"].as_str()?.to_string())
}

/// Which accuracy ranks the runs: the validation split's where every run has one, else the
/// test set's.
pub fn by_validation(points: &[Point]) -> bool {
    !points.is_empty() && points.iter().all(|p| p.validation_accuracy.is_some())
}

/// For each point, whether no other is at least as accurate with at most as many nonzeros
/// and strictly better in one of the two.
pub fn pareto(points: &[Point]) -> Vec<bool> {
    let v = by_validation(points);
    points
        .iter()
        .map(|p| {
            !points.iter().any(|q| {
                q.score(v) >= p.score(v)
                    && q.nonzeros <= p.nonzeros
                    && (q.score(v) > p.score(v) || q.nonzeros < p.nonzeros)
            })
        })
        .collect()
}

/// The points in table order: accuracy down, then density up.
pub fn sorted(points: &[Point]) -> Vec<usize> {
    let v = by_validation(points);
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        let (p, q) = (&points[a], &points[b]);
        q.score(v).total_cmp(&p.score(v)).then(p.density.total_cmp(&q.density))
    });
    order
}

pub fn table(points: &[Point]) -> String {
    let front = pareto(points);
    let width = points.iter().map(|p| p.label.len()).max().unwrap_or(3).max(3);
    let shrunk = points.iter().any(|p| p.architecture.is_some());
    let mut out =
        format!("  {:<width$}  {:>9}  {:>10}  {:>12}  {:>9}", "run", "test acc", "valid acc", "nonzero", "density");
    out += if shrunk { "  shrunk to\n" } else { "\n" };
    for i in sorted(points) {
        let p = &points[i];
        let valid = p.validation_accuracy.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
        let _ = writeln!(
            out,
            "{} {:<width$}  {:>8.2}%  {:>10}  {:>12}  {:>8.2}%{}{}",
            if front[i] { "*" } else { " " },
            p.label,
            p.test_accuracy * 100.0,
            valid,
            hoyer_front::summary::thousands(p.nonzeros),
            p.density * 100.0,
            if shrunk { format!("  {}", p.architecture.as_deref().unwrap_or("-")) } else { String::new() },
            if p.finished { "" } else { "  (not finished)" }
        );
    }
    if by_validation(points) {
        out + "  sorted by validation accuracy (choose on it: the test set is for the final figure only)\n  \
               * no other run is as accurate on the validation split with as few nonzeros (the Pareto front)\n"
    } else {
        out + "  * no other run is as accurate with as few nonzeros (the Pareto front)\n"
    }
}

/// How the run in the folder ended, as its run.json says (none while it runs or never ran).
fn outcome(dir: &Path) -> Option<String> {
    crate::provenance::read(dir).ok()??["outcome"].as_str().map(str::to_string)
}

/// Whether the run folder holds a finished run.
pub fn finished(dir: &Path) -> bool {
    outcome(dir).as_deref() == Some("finished")
}

/// Whether the run folder holds a run `--stop-before` stopped where it was asked to (a
/// sweep's shared run, ready to branch from).
pub fn stopped_before(dir: &Path) -> bool {
    outcome(dir).as_deref() == Some(crate::train::STOPPED_BEFORE)
}

/// sweep.json's text.
pub fn json_text(points: &[Point]) -> String {
    serde_json::to_string_pretty(&to_json(points)).unwrap_or_default() + "\n"
}

pub fn to_json(points: &[Point]) -> Value {
    let front = pareto(points);
    let runs: Vec<Value> = sorted(points)
        .into_iter()
        .map(|i| {
            let p = &points[i];
            json!({
                "run": p.label,
                "dir": p.dir.display().to_string(),
                "test_accuracy": p.test_accuracy,
                "validation_accuracy": p.validation_accuracy,
                "nonzeros": p.nonzeros,
                "density": p.density,
                "finished": p.finished,
                "architecture": p.architecture,
                "pareto": front[i],
            })
        })
        .collect();
    json!({ "ranked_by": if by_validation(points) { "validation_accuracy" } else { "test_accuracy" }, "runs": runs })
}

/// The ranking accuracy (validation where every run has one) against nonzero parameters
/// (log scale), every run a dot, the Pareto front joined and labelled.
pub fn pareto_svg(points: &[Point]) -> String {
    crate::plots::pareto_svg(points, by_validation(points), &pareto(points))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, acc: f64, nz: u64) -> Point {
        Point {
            label: label.into(),
            dir: PathBuf::new(),
            test_accuracy: acc,
            validation_accuracy: None,
            nonzeros: nz,
            density: nz as f64 / 1000.0,
            finished: true,
            architecture: None,
        }
    }

    #[test]
    fn grids_cross_every_axis() {
        let axes = vec![parse_axis("a.lr=1,2").unwrap(), parse_axis("b.epochs=3,4,5").unwrap()];
        let g = grid(&axes);
        assert_eq!(g.len(), 6);
        assert_eq!(g[0], vec!["a.lr=1", "b.epochs=3"]);
        assert_eq!(g[5], vec!["a.lr=2", "b.epochs=5"]);
        assert_eq!(folder_name(&g[1]), "a.lr=1,b.epochs=4");
        // Names that had to change carry a hash of the overrides: never two points in one folder.
        let (slash, star) = (folder_name(&["p=2/1000".into()]), folder_name(&["p=2*1000".into()]));
        assert!(slash.starts_with("p=2_1000~") && star.starts_with("p=2_1000~") && slash != star, "{slash} {star}");
        assert_ne!(folder_name(&["p=2_1000".into()]), slash);
        assert_eq!(folder_name(&["p=2/1000".into()]), slash, "the same point, the same folder");
        let long = folder_name(&[format!("p={}", "9".repeat(300))]);
        assert!(long.len() < 140 && long.contains('~'), "{long}");
        assert_eq!(folder_name(&["prune.1.sparsity=98.5%".into()]), "prune.1.sparsity=98.5%");
        assert!(parse_axis("nothing").is_err() && parse_axis("a=").is_err());
    }

    #[test]
    fn the_front_is_what_nothing_beats() {
        let pts = vec![point("a", 0.98, 500), point("b", 0.97, 100), point("c", 0.96, 300), point("d", 0.98, 600)];
        assert_eq!(pareto(&pts), vec![true, true, false, false]);
        assert_eq!(sorted(&pts), vec![0, 3, 1, 2]);
        let t = table(&pts);
        assert!(t.lines().nth(1).unwrap().starts_with("* a"), "{t}");
        let svg = pareto_svg(&pts);
        // Four runs and the legend's two marks; the front's runs labelled, the others not.
        assert_eq!(svg.matches("<circle").count(), 4 + 2);
        let label = |l: &str| svg.contains(&format!("\n{l}\n</text>"));
        assert!(label("a") && label("b") && !label("c") && !label("d"), "{svg}");
        assert!(
            svg.contains("Pareto front")
                && svg.contains("other runs")
                && svg.contains("nonzero parameters (log scale)")
        );
        assert!(svg.contains("test accuracy (%)"));
    }

    /// Where every run has a validation accuracy, it ranks them, and the plot says so; the
    /// test accuracy does not choose.
    #[test]
    fn validation_accuracy_ranks_where_every_run_has_one() {
        let mut pts = vec![point("a", 0.99, 500), point("b", 0.97, 500)];
        pts[0].validation_accuracy = Some(0.96);
        pts[1].validation_accuracy = Some(0.98);
        assert_eq!(sorted(&pts), vec![1, 0]);
        assert_eq!(pareto(&pts), vec![false, true]);
        assert!(table(&pts).contains("sorted by validation accuracy"));
        assert!(pareto_svg(&pts).contains("validation accuracy against"));
        assert_eq!(to_json(&pts)["ranked_by"], "validation_accuracy");
        // One run without: the test set ranks them all.
        pts[0].validation_accuracy = None;
        assert_eq!(sorted(&pts), vec![0, 1]);
        assert!(pareto_svg(&pts).contains("test accuracy against"));
        // A shrunk run's architecture gets a column.
        assert!(!table(&pts).contains("shrunk to"));
        pts[1].architecture = Some("784-48-15-10".into());
        let t = table(&pts);
        assert!(t.contains("shrunk to") && t.contains("  784-48-15-10") && t.contains("%  -"), "{t}");
    }
}

/// Starts every point not started yet from a copy of the shared run in `base` (its files, not
/// its lock): the steps before the branch ran once, there.
pub fn branch(base: &Path, root: &Path, points: &[Vec<String>]) -> Result<(), String> {
    for p in points {
        let dir = root.join(folder_name(p));
        if dir.join("checkpoint.safetensors").is_file() {
            continue;
        }
        copy_run(base, &dir).map_err(|e| format!("cannot copy {} to {}: {e}", base.display(), dir.display()))?;
    }
    Ok(())
}

fn copy_run(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.file_type()?.is_file() && name != ".hoyer.lock" {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Runs every point of a sweep as a process of its own (`command(folder, overrides)`, its
/// output in NAME.log beside its folder), `jobs` at a time; a finished point is kept. `say`
/// gets a line as each point ends. Returns how many runs failed.
pub fn run_all(
    root: &Path,
    points: &[Vec<String>],
    jobs: usize,
    command: &dyn Fn(&Path, &[String]) -> std::process::Command,
    say: &mut dyn FnMut(String),
) -> Result<usize, String> {
    let mut queue: std::collections::VecDeque<&Vec<String>> = points.iter().collect();
    let mut running: Vec<(String, std::process::Child)> = Vec::new();
    let (mut done, mut failed) = (0usize, 0usize);
    let total = points.len();
    loop {
        while running.len() < jobs {
            let Some(p) = queue.pop_front() else { break };
            let name = folder_name(p);
            let dir = root.join(&name);
            if finished(&dir) {
                done += 1;
                say(format!("[{done}/{total}] {name}: finished before, kept"));
                continue;
            }
            let mut cmd = command(&dir, p);
            let log_path = root.join(format!("{name}.log"));
            let log =
                std::fs::File::create(&log_path).map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
            let err = log.try_clone().map(std::process::Stdio::from).unwrap_or_else(|_| std::process::Stdio::null());
            cmd.stdout(log).stderr(err);
            let child = cmd.spawn().map_err(|e| format!("cannot start a run: {e}"))?;
            running.push((name, child));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut k = 0;
        while k < running.len() {
            match running[k].1.try_wait() {
                Ok(Some(status)) => {
                    let (name, _) = running.remove(k);
                    done += 1;
                    if status.success() {
                        let line = Point::read(&name, &root.join(&name)).map_or(String::new(), |p| {
                            format!(
                                ": test accuracy {:.2}%, density {:.2}%",
                                p.test_accuracy * 100.0,
                                p.density * 100.0
                            )
                        });
                        say(format!("[{done}/{total}] {name}{line}"));
                    } else {
                        failed += 1;
                        say(format!(
                            "[{done}/{total}] {name}: failed (see {})",
                            root.join(format!("{name}.log")).display()
                        ));
                    }
                }
                Ok(None) | Err(_) => k += 1,
            }
        }
    }
    Ok(failed)
}
