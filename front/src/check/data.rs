//! `data NAME = idx("folder") { scale 1/255 }`, `cifar10("folder")` and `synthetic(...)`.

use super::values::{bind, count, in_range, number, Range};
use crate::codes::Code;
use crate::diagnostics::{did_you_mean, Diagnostic, Sink};
use crate::program::{DataSet, DataSource};
use crate::syntax::ast::{DataDef, ExprKind, SettingValue};
use std::collections::HashMap;

const SOURCES: [&str; 4] = ["idx", "cifar10", "synthetic", "text"];

pub fn check_data(sink: &mut Sink, d: &DataDef) -> Option<DataSet> {
    let call = &d.source;
    let source = match call.func.name.as_str() {
        "idx" | "cifar10" => {
            let name = call.func.name.as_str();
            let args = bind(sink, call, &format!("`{name}`"), &[("path", true)])?;
            let path = args[0]?;
            match &path.kind {
                ExprKind::Str(s) if name == "idx" => DataSource::Idx { path: s.clone() },
                ExprKind::Str(s) => DataSource::Cifar10 { path: s.clone() },
                _ => {
                    let example = if name == "idx" { "mnist" } else { "cifar-10-batches-bin" };
                    sink.push(
                        Diagnostic::error(Code::WrongKind, format!("the path of `{name}` must be a string"))
                            .label(path.span, "not a string")
                            .help(format!("write the folder in double quotes: {name}(\"{example}\")")),
                    );
                    return None;
                }
            }
        }
        "text" => {
            let args = bind(sink, call, "`text`", &[("path", true), ("context", true)])?;
            let path = match &args[0]?.kind {
                ExprKind::Str(s) => s.clone(),
                _ => {
                    sink.push(
                        Diagnostic::error(Code::WrongKind, "the path of `text` must be a string")
                            .label(args[0]?.span, "not a string")
                            .help("write the file in double quotes: text(\"corpus.txt\", context = 128)"),
                    );
                    return None;
                }
            };
            let context = count(sink, args[1]?, "the context", 1)?;
            DataSource::Text { path, context, context_span: args[1]?.span }
        }
        "synthetic" => {
            let params = [("classes", true), ("train", true), ("test", true), ("noise", false), ("seed", false)];
            let args = bind(sink, call, "`synthetic`", &params)?;
            let classes = count(sink, args[0]?, "the number of classes", 1);
            let train = count(sink, args[1]?, "the number of training samples", 1);
            let test = count(sink, args[2]?, "the number of test samples", 1);
            let noise = match args[3] {
                Some(e) => number(sink, e, "the noise")
                    .and_then(|v| in_range(sink, v, e.span, "the noise", Range::NonNegative)),
                None => Some(1.0),
            };
            let seed = match args[4] {
                Some(e) => count(sink, e, "the seed", 0),
                None => Some(0),
            };
            if classes == Some(1) {
                sink.push(
                    Diagnostic::error(Code::OutOfRange, "a classification data set needs at least 2 classes")
                        .label(args[0]?.span, "only one class")
                        .help("use `classes = 2` or more"),
                );
                return None;
            }
            DataSource::Synthetic { classes: classes?, train: train?, test: test?, noise: noise?, seed: seed? }
        }
        other => {
            let help = did_you_mean(other, SOURCES)
                .unwrap_or_else(|| "data comes from `idx(\"folder\")` or `synthetic(...)`".into());
            sink.push(
                Diagnostic::error(Code::UnknownDataSource, format!("unknown data source `{other}`"))
                    .label(call.func.span, "not a data source")
                    .help(help),
            );
            return None;
        }
    };

    let mut scale = 1.0;
    let mut normalize = None;
    let mut augment = crate::program::Augment::default();
    let mut seen = HashMap::new();
    for s in &d.settings {
        let key = s.key.name.as_str();
        if let Some(first) = seen.insert(key, s.key.span) {
            sink.push(
                Diagnostic::error(Code::DuplicateSetting, format!("`{key}` is given twice"))
                    .label(s.key.span, "given again here")
                    .label(first, "first given here")
                    .help("keep one of them"),
            );
            continue;
        }
        match (&s.value, key) {
            (SettingValue::Expr(e), "scale") => {
                if let Some(v) = number(sink, e, "the scale") {
                    scale = in_range(sink, v, e.span, "the scale", Range::Positive).unwrap_or(1.0);
                }
            }
            (SettingValue::Args(args), "normalize") => {
                let call =
                    crate::syntax::ast::Call { func: s.key.clone(), args: args.clone(), piped: false, span: s.span };
                if let Some(b) = bind(sink, &call, "`normalize`", &[("mean", true), ("std", true)]) {
                    // A number, or a list of one per channel.
                    let numbers = |sink: &mut Sink, e: &crate::syntax::ast::Expr, what: &str, range: Option<Range>| {
                        let items: Vec<&crate::syntax::ast::Expr> = match &e.kind {
                            ExprKind::List(items) => items.iter().collect(),
                            _ => vec![e],
                        };
                        let mut out = Vec::new();
                        for item in items {
                            let v = number(sink, item, what)?;
                            out.push(match range {
                                Some(r) => in_range(sink, v, item.span, what, r)?,
                                None => v,
                            });
                        }
                        Some(out)
                    };
                    let mean = b[0].and_then(|e| numbers(sink, e, "the mean", None));
                    let std = b[1].and_then(|e| numbers(sink, e, "the standard deviation", Some(Range::Positive)));
                    if let (Some(mean), Some(std)) = (mean, std) {
                        if mean.is_empty() || mean.len() != std.len() {
                            sink.push(
                                Diagnostic::error(
                                    Code::OutOfRange,
                                    format!(
                                        "`normalize` has {} means and {} standard deviations",
                                        mean.len(),
                                        std.len()
                                    ),
                                )
                                .label(s.span, "here")
                                .help("give one number each, or one per channel in both lists"),
                            );
                        } else {
                            normalize = Some(crate::program::Normalize { mean, std, span: s.span });
                        }
                    }
                }
            }
            (SettingValue::Args(args), "random_crop") => {
                let call =
                    crate::syntax::ast::Call { func: s.key.clone(), args: args.clone(), piped: false, span: s.span };
                if let Some(b) = bind(sink, &call, "`random_crop`", &[("size", true), ("padding", false)]) {
                    let size = b[0].and_then(|e| count(sink, e, "the crop size", 1));
                    let padding = match b[1] {
                        Some(e) => count(sink, e, "the padding", 0),
                        None => Some(0),
                    };
                    if let (Some(size), Some(padding)) = (size, padding) {
                        augment.crop = Some((size, padding, s.span));
                    }
                }
            }
            (SettingValue::Args(_), "hflip") => augment.hflip = true,
            _ => {
                let help = did_you_mean(key, ["scale", "normalize", "random_crop", "hflip"]).unwrap_or_else(|| {
                    "a data block takes `scale`, `normalize(mean = .., std = ..)`, `random_crop(size, padding = p)` and `hflip`"
                        .into()
                });
                sink.push(
                    Diagnostic::error(Code::UnknownStatement, format!("unknown data setting `{key}`"))
                        .label(s.key.span, "not a data setting")
                        .help(help),
                );
            }
        }
    }
    Some(DataSet { name: d.name.name.clone(), source, scale, normalize, augment, span: call.span })
}
