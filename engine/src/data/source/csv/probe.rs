//! What `engine validate` reads of a CSV source: columns chosen by name resolved against
//! the header (each unknown name reported where it is written), rows counted, the label
//! column's values (class ids or names) and the categorical columns' vocabularies.

use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{ColumnRef, CsvSpec, FeatureColumns, TargetColumns, clean_text, csv_cells};
use crate::check::{ProbeCx, ProbeFailure, SourceInfo};
use crate::data::open;
use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::Seg;

/// Rows, shape, classes or targets and vocabularies of a CSV source.
pub(super) fn probe(csv: &CsvSpec, cx: &mut ProbeCx) -> Result<SourceInfo, ProbeFailure> {
    let path = cx.base_dir().join(&csv.path);
    let (features, answer, header, categorical) =
        csv_columns(cx, csv, &path).ok_or(ProbeFailure::Reported)?;
    let label = match &answer {
        Answer::Label(l) => Some(*l),
        Answer::Targets(_) => None,
    };
    let CsvProbe {
        rows,
        cols,
        labels,
        categories,
    } = probe_csv(&path, csv.header, label, &categorical)
        .map_err(|e| ProbeFailure::at("path", e))?;
    let width = features.len() + categories.iter().map(|(_, v)| v.len()).sum::<usize>();
    let last = features.iter().copied().max().unwrap_or(0);
    let answers = match &answer {
        Answer::Label(l) => vec![*l],
        Answer::Targets(t) => t.clone(),
    };
    let last_answer = answers
        .iter()
        .chain(&categorical)
        .copied()
        .max()
        .unwrap_or(0);
    if last >= cols || last_answer >= cols {
        let what = if label.is_some() {
            "the label is column"
        } else {
            "the targets reach column"
        };
        return Err(ProbeFailure::at(
            "features",
            format!(
                "the file has {cols} columns, but the features reach column {last} and {what} {last_answer} (0-based)"
            ),
        ));
    }
    let shape = csv.shape.clone().unwrap_or(vec![width]);
    let values = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
    if values != Some(width) {
        let held = values.map_or("more".to_string(), |v| v.to_string());
        return Err(ProbeFailure::at(
            "shape",
            format!(
                "shape {shape:?} holds {held} values but the selected columns make {width} features"
            ),
        ));
    }
    if let Answer::Targets(targets) = &answer {
        let names = targets
            .iter()
            .enumerate()
            .map(|(k, &c)| {
                header
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| format!("target{k}"))
            })
            .collect();
        return Ok(SourceInfo {
            samples: rows,
            shape,
            classes: 0,
            class_names: None,
            targets: Some(names),
            categories,
        });
    }
    let (classes, class_names) = match labels {
        Labels::Names(names) => match csv.classes {
            Some(n) if n != names.len() => {
                return Err(ProbeFailure::at(
                    "classes",
                    format!(
                        "the label column holds {} class names ({}) but `classes` is {n}",
                        names.len(),
                        list_names(&names)
                    ),
                ));
            }
            _ => (names.len(), Some(names)),
        },
        Labels::Ids { max } => (csv.classes.unwrap_or(max + 1), None),
    };
    if classes < 2 {
        return Err(ProbeFailure::at(
            "label",
            format!("the label column holds {classes} class; classification needs at least two"),
        ));
    }
    Ok(SourceInfo {
        samples: rows,
        shape,
        classes,
        class_names,
        targets: None,
        categories,
    })
}

/// What a CSV's samples are labelled with: a class label column or regression target
/// columns (0-based).
enum Answer {
    Label(usize),
    Targets(Vec<usize>),
}

/// Numeric feature columns, label or target columns, the header's names, categorical
/// columns.
type CsvColumns = (Vec<usize>, Answer, Vec<String>, Vec<usize>);

/// A CSV source's feature columns and label (or target) columns, 0-based, names
/// resolved through the file's header (each unknown name is reported where it is
/// written, with the closest header name), and the header's names (empty without one).
/// `None` when a column cannot be resolved.
fn csv_columns(cx: &mut ProbeCx, csv: &CsvSpec, path: &Path) -> Option<CsvColumns> {
    let at = cx.path(&[]);
    let at = at.as_slice();
    let key = |k: &str| [at, &[Seg::Key(k.into())]].concat();
    let answer_key = match (&csv.label, &csv.target) {
        (Some(_), None) => "label",
        (None, Some(_)) => "target",
        (label, _) => {
            let both = label.is_some();
            cx.report(
                Diagnostic::new(
                    "label-or-target",
                    if both {
                        "a CSV source gives both `label` and `target`"
                    } else {
                        "a CSV source needs a `label` (classification) or a `target` (regression)"
                    },
                )
                .at(cx.span(&if both { key("target") } else { at.to_vec() }), if both { "and a target" } else { "this source" })
                .hint("`label: species` names the class column; `target: progression` (or a list) the float columns a regression predicts"),
            );
            return None;
        }
    };
    let answer_refs: Vec<&ColumnRef> = match (&csv.label, &csv.target) {
        (Some(l), _) => vec![l],
        (_, Some(t)) => t.columns(),
        _ => Vec::new(),
    };
    let names_used = matches!(csv.features, FeatureColumns::Names(_))
        || answer_refs
            .iter()
            .chain(csv.categorical.iter().collect::<Vec<_>>().iter())
            .any(|c| matches!(c, ColumnRef::Name(_)));
    let header = if names_used || csv.header {
        // Where a name is used: the features list, else the label.
        let named = if matches!(csv.features, FeatureColumns::Names(_)) {
            "features"
        } else {
            answer_key
        };
        let problem = if !csv.header {
            Err((
                key(named),
                "columns are chosen by name but `header` is false".to_string(),
                "a name, but this source reads no header",
                "set `header: true`: names come from the file's first row".to_string(),
            ))
        } else {
            read_header(path).map_err(|e| {
                (
                    key("path"),
                    e,
                    "while reading its header",
                    "paths are relative to the pipeline file".to_string(),
                )
            })
        };
        match problem {
            Ok(header) => header,
            Err((path, message, label, hint)) => {
                cx.report(
                    Diagnostic::new("bad-data-source", message)
                        .at(cx.span(&path), label)
                        .hint(hint),
                );
                return None;
            }
        }
    } else {
        Vec::new()
    };
    let mut ok = true;
    let mut resolve = |name: &str, path: Vec<Seg>| -> usize {
        match header.iter().position(|h| h == name) {
            Some(i) => i,
            None => {
                ok = false;
                cx.report(
                    Diagnostic::new(
                        "unknown-column",
                        format!("the header of `{}` names no column `{name}`", csv.path),
                    )
                    .at(cx.span(&path), "not in the header")
                    .expected_found(
                        format!(
                            "one of {}",
                            header
                                .iter()
                                .map(|h| format!("`{h}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        format!("`{name}`"),
                    )
                    .hint(
                        did_you_mean(name, header.iter().map(String::as_str)).unwrap_or_else(
                            || "names are matched exactly, as the header writes them".to_string(),
                        ),
                    ),
                );
                0
            }
        }
    };
    let features: Vec<usize> = match &csv.features {
        FeatureColumns::Range(r) => (r.start..r.end).collect(),
        FeatureColumns::Names(names) => names
            .iter()
            .enumerate()
            .map(|(k, n)| {
                resolve(
                    n,
                    [at, &[Seg::Key("features".into()), Seg::Index(k)]].concat(),
                )
            })
            .collect(),
    };
    let several = matches!(csv.target, Some(TargetColumns::Many(_)));
    let answers: Vec<usize> = answer_refs
        .iter()
        .enumerate()
        .map(|(k, c)| match c {
            ColumnRef::Index(i) => *i,
            ColumnRef::Name(n) => {
                let mut path = key(answer_key);
                if several {
                    path.push(Seg::Index(k));
                }
                resolve(n, path)
            }
        })
        .collect();
    let categorical: Vec<usize> = csv
        .categorical
        .iter()
        .enumerate()
        .map(|(k, c)| match c {
            ColumnRef::Index(i) => *i,
            ColumnRef::Name(n) => resolve(
                n,
                [at, &[Seg::Key("categorical".into()), Seg::Index(k)]].concat(),
            ),
        })
        .collect();
    if ok
        && let Some((k, &c)) = categorical
            .iter()
            .enumerate()
            .find(|(_, c)| features.contains(c) || answers.contains(c))
    {
        let header_name = header
            .get(c)
            .map(|h| format!(" (`{h}`)"))
            .unwrap_or_default();
        cx.report(
            Diagnostic::new(
                "column-reused",
                format!("column {c}{header_name} is categorical and also a numeric feature or the {answer_key}"),
            )
            .at(cx.span(&[at, &[Seg::Key("categorical".into()), Seg::Index(k)]].concat()), "used twice")
            .hint("list a text column under `categorical` only"),
        );
        ok = false;
    }
    if ok && let Some(&both) = answers.iter().find(|c| features.contains(c)) {
        let header_name = header
            .get(both)
            .map(|h| format!(" (`{h}`)"))
            .unwrap_or_default();
        cx.report(
            Diagnostic::new(
                "column-reused",
                format!("column {both}{header_name} is both a feature and the {answer_key}"),
            )
            .at(cx.span(&key(answer_key)), "also a feature")
            .hint(format!(
                "the {answer_key} column must not also be a feature: the model would see the answer"
            )),
        );
        ok = false;
    }
    let answer = match csv.label {
        Some(_) => Answer::Label(answers.first().copied().unwrap_or(0)),
        None => Answer::Targets(answers),
    };
    ok.then_some((features, answer, header, categorical))
}

/// The cells of a CSV file's first non-blank row, cleaned as the data stages clean them.
fn read_header(path: &Path) -> Result<Vec<String>, String> {
    let reader = BufReader::new(open(path)?);
    for line in reader.lines() {
        let line = line.map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        if !line.trim().is_empty() {
            return Ok(csv_cells(&line)
                .into_iter()
                .map(|c| clean_text(c).to_string())
                .collect());
        }
    }
    Err(format!("`{}` holds no header row", path.display()))
}

/// What a CSV's label column holds.
enum Labels {
    /// Integer class ids, the largest `max`.
    Ids { max: usize },
    /// Class names (some label is not a whole number), distinct and sorted.
    Names(Vec<String>),
}

struct CsvProbe {
    rows: usize,
    cols: usize,
    labels: Labels,
    /// Each categorical column with its distinct values, sorted.
    categories: Vec<(usize, Vec<String>)>,
}

/// `setosa`, `versicolor`, … (at most 8 shown).
fn list_names(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
    let more = names.len().saturating_sub(8);
    if more > 0 {
        format!("{}, and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Rows, columns and the label column's values of a CSV file (no label: regression).
fn probe_csv(
    path: &Path,
    header: bool,
    label: Option<usize>,
    categorical: &[usize],
) -> Result<CsvProbe, String> {
    let reader = BufReader::new(open(path)?);
    let mut vocabularies: Vec<std::collections::BTreeSet<String>> =
        vec![std::collections::BTreeSet::new(); categorical.len()];
    let mut rows = 0;
    let mut cols = 0;
    let mut names = std::collections::BTreeSet::new();
    let mut max = 0usize;
    let mut all_ids = true;
    for line in reader.lines() {
        let line = line.map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        if cols == 0 {
            cols = csv_cells(&line).len();
        }
        rows += 1;
        if header && rows == 1 {
            continue;
        }
        let cells = csv_cells(&line);
        for (vocabulary, &c) in vocabularies.iter_mut().zip(categorical) {
            if let Some(cell) = cells.get(c).map(|c| clean_text(c))
                && vocabulary.len() <= MAX_CLASS_NAMES
                && !vocabulary.contains(cell)
            {
                vocabulary.insert(cell.to_string());
            }
        }
        // A short row is reported by the data stages, with its row number.
        let Some(label) = label else { continue };
        let Some(cell) = cells.get(label).map(|c| clean_text(c)) else {
            continue;
        };
        match cell.parse::<f64>() {
            Ok(v) if v >= 0.0 && v.fract() == 0.0 && v < u32::MAX as f64 => {
                max = max.max(v as usize);
            }
            _ => all_ids = false,
        }
        if names.len() <= MAX_CLASS_NAMES && !names.contains(cell) {
            names.insert(cell.to_string());
        }
    }
    let rows = rows - usize::from(header && rows > 0);
    if rows == 0 {
        return Err(format!("`{}` holds no samples", path.display()));
    }
    let labels = if all_ids {
        Labels::Ids { max }
    } else if names.len() > MAX_CLASS_NAMES {
        return Err(format!(
            "the label column (column {}, 0-based) holds more than {MAX_CLASS_NAMES} distinct values that are not all class ids; is it the right column? (regression targets go in `target:`)",
            label.unwrap_or(0)
        ));
    } else {
        Labels::Names(names.into_iter().collect())
    };
    if let Some((&c, _)) = categorical
        .iter()
        .zip(&vocabularies)
        .find(|(_, v)| v.len() > MAX_CLASS_NAMES)
    {
        return Err(format!(
            "categorical column {c} (0-based) holds more than {MAX_CLASS_NAMES} distinct values; is it an id or free text?"
        ));
    }
    let categories = categorical
        .iter()
        .copied()
        .zip(vocabularies.into_iter().map(|v| v.into_iter().collect()))
        .collect();
    Ok(CsvProbe {
        rows,
        cols,
        labels,
        categories,
    })
}

/// More distinct label names than this is a wrong column, not a vocabulary.
const MAX_CLASS_NAMES: usize = 10_000;
