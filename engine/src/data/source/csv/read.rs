//! Delimited text (`.csv`, or gzip-compressed `.csv.gz`) with numeric cells.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::data::dataset::{Dataset, Task, assemble, resolve_labels, shape_len};
use crate::data::error::DataError;
use crate::data::read::{empty, read_bytes};

/// Rows parsed per rayon task: large enough to amortise scheduling, small enough to
/// spread a few thousand rows over the cores.
const ROWS_PER_TASK: usize = 256;

/// The byte-order mark some editors put at the start of UTF-8 text.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Which columns of a row to take (0-based column indices).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Columns {
    /// Exactly these columns, in this order.
    List(Vec<usize>),
    /// Columns `start..end` (end excluded).
    Range { start: usize, end: usize },
    /// The last column of the row.
    Last,
    /// Every column that is not a label column (only for features).
    Rest,
    /// The columns the header names so, in this order (needs `header`).
    Named(Vec<String>),
}

/// A CSV source: one sample per line, cells separated by `delimiter`.
///
/// Cells are split at delimiters outside double quotes (`"Smith, J."` is one cell) and
/// trimmed of spaces and of one pair of surrounding double quotes; a quoted cell cannot
/// span lines. Blank lines are skipped. Only configured columns are
/// parsed, so other columns may hold anything. Gzip is detected from the file's bytes.
///
/// ```ignore
/// let digits = CsvSource::new("pipelines/data/digits.csv.gz"); // features: rest, label: last
/// let dataset = digits.load()?;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CsvSource {
    /// The file to read (`.csv` or `.csv.gz`).
    pub path: PathBuf,
    /// Whether the first non-blank line is a header to skip.
    pub header: bool,
    /// The cell separator, `b','` by default.
    pub delimiter: u8,
    /// Feature columns.
    pub features: Columns,
    /// Label column(s): exactly one for classification, any number for regression.
    pub label: Columns,
    /// Class ids or regression targets.
    pub task: Task,
    /// Per-sample shape of the features (e.g. `[8, 8]`); `None` means `[feature count]`.
    pub shape: Option<Vec<usize>>,
    /// Class names, sorted: the label column holds names, class `i` being
    /// `class_names[i]` (a name not in the list is an error naming its row).
    pub class_names: Option<Vec<String>>,
    /// Categorical (text) feature columns, one-hot encoded after the numeric features, in
    /// this order: each cell becomes `values.len()` features, a 1 at its value's position.
    pub categorical: Vec<Category>,
}

/// A categorical feature column and its vocabulary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Category {
    /// The column: `Columns::List(vec![i])` or `Columns::Named(vec![name])`.
    pub column: Columns,
    /// Its values, sorted (a value outside them is an error naming its row).
    pub values: Vec<String>,
}

impl CsvSource {
    /// A headerless, comma-separated classification source whose last column is the
    /// label and whose other columns are features, with the number of classes inferred.
    pub fn new(path: impl Into<PathBuf>) -> CsvSource {
        CsvSource {
            path: path.into(),
            header: false,
            delimiter: b',',
            features: Columns::Rest,
            label: Columns::Last,
            task: Task::Classify { classes: None },
            shape: None,
            class_names: None,
            categorical: Vec::new(),
        }
    }

    /// Reads and parses the file (rows in parallel on rayon).
    pub fn load(&self) -> Result<Dataset, DataError> {
        let bytes = read_bytes(&self.path)?;
        self.parse(&bytes)
    }

    /// Parses already-read, decompressed bytes; `self.path` is used in messages only.
    pub(crate) fn parse(&self, bytes: &[u8]) -> Result<Dataset, DataError> {
        let file = self.path.as_path();
        let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        let mut lines = split_lines(bytes);
        let header: Option<Vec<String>> = (self.header && !lines.is_empty()).then(|| {
            split_cells(lines.remove(0).text, self.delimiter)
                .map(|c| String::from_utf8_lossy(clean(c)).into_owned())
                .collect()
        });
        let Some(first) = lines.first() else {
            let what = if self.header {
                "it has a header but no data rows"
            } else {
                "it has no data rows"
            };
            return Err(empty(file, what));
        };
        let width = split_cells(first.text, self.delimiter).count();
        let layout = Layout::resolve(self, width, first.row, header.as_deref())?;
        let one_hot: usize = self.categorical.iter().map(|c| c.values.len()).sum();
        let width_features = layout.features.len() + one_hot;
        let shape = match &self.shape {
            None => vec![width_features],
            Some(shape) => {
                if shape.is_empty() || shape_len(shape) != Some(width_features) {
                    return Err(DataError::Config(format!(
                        "{}: shape {shape:?} does not hold the {width_features} features of the configured columns",
                        file.display(),
                    )));
                }
                shape.clone()
            }
        };

        let parsed: Vec<Result<Parsed, DataError>> = lines
            .par_chunks(ROWS_PER_TASK)
            .map(|chunk| parse_rows(file, chunk, self, &layout, width, first.row))
            .collect();
        let mut features = Vec::with_capacity(lines.len() * width_features);
        let mut label_values = Vec::with_capacity(lines.len() * layout.labels.len());
        for chunk in parsed {
            let chunk = chunk?;
            features.extend_from_slice(&chunk.features);
            label_values.extend_from_slice(&chunk.labels);
        }
        let labels = resolve_labels(
            file,
            &label_values,
            layout.labels.len(),
            &self.task,
            |index, within| (lines[index].row, Some(layout.labels[within] + 1)),
        )?;
        Ok(assemble(features, shape, labels))
    }
}

/// One non-blank line and its 1-based line number.
struct Line<'a> {
    row: usize,
    text: &'a [u8],
}

fn split_lines(bytes: &[u8]) -> Vec<Line<'_>> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, text)| Line {
            row: index + 1,
            text: text.strip_suffix(b"\r").unwrap_or(text),
        })
        .filter(|line| !line.text.iter().all(u8::is_ascii_whitespace))
        .collect()
}

/// The cells of one line, split at `delimiter` outside double quotes: a quoted cell may
/// hold the delimiter (`"Smith, J."`), and `""` inside quotes is a quote.
fn split_cells(text: &[u8], delimiter: u8) -> impl Iterator<Item = &[u8]> {
    let (mut start, mut pos, mut quoted, mut done) = (0, 0, false, false);
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while pos < text.len() {
            let b = text[pos];
            pos += 1;
            if b == b'"' {
                // A doubled quote toggles twice: still inside.
                quoted = !quoted;
            } else if b == delimiter && !quoted {
                let cell = &text[start..pos - 1];
                start = pos;
                return Some(cell);
            }
        }
        done = true;
        Some(&text[start..])
    })
}

/// The cells of a comma-separated line as the data stages split them (quotes respected),
/// for the check's reading of headers and labels.
pub(crate) fn csv_cells(line: &str) -> Vec<&str> {
    split_cells(line.as_bytes(), b',')
        // Cells end at an ASCII comma or the line's end, so each is still UTF-8.
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect()
}

/// Feature and label columns resolved against the row width.
struct Layout {
    features: Vec<usize>,
    labels: Vec<usize>,
    /// The categorical columns, in the source's order.
    categorical: Vec<usize>,
}

impl Layout {
    /// Resolves `source`'s columns for rows of `width` cells; `header` holds the header's
    /// cells (cleaned) when the file has one.
    fn resolve(
        source: &CsvSource,
        width: usize,
        first_row: usize,
        header: Option<&[String]>,
    ) -> Result<Layout, DataError> {
        let file = &source.path;
        // Names become indices through the header.
        let by_name = |columns: &Columns| -> Result<Columns, DataError> {
            let Columns::Named(names) = columns else {
                return Ok(columns.clone());
            };
            let Some(header) = header else {
                return Err(DataError::Config(format!(
                    "{}: columns are chosen by name ({}) but the file has no header (set header: true)",
                    file.display(),
                    names.join(", ")
                )));
            };
            names
                .iter()
                .map(|name| {
                    header.iter().position(|h| h == name).ok_or_else(|| {
                        DataError::Config(format!(
                            "{}: the header names no column `{name}` (its columns: {})",
                            file.display(),
                            header.join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<usize>, DataError>>()
                .map(Columns::List)
        };
        let (features, label) = (by_name(&source.features)?, by_name(&source.label)?);
        let mut categorical = Vec::new();
        for c in &source.categorical {
            match by_name(&c.column)? {
                Columns::List(list) if list.len() == 1 && list[0] < width => {
                    categorical.push(list[0])
                }
                Columns::List(list) if list.len() == 1 => {
                    return Err(DataError::NoSuchColumn {
                        file: file.clone(),
                        row: first_row,
                        column: list[0] + 1,
                        width,
                    });
                }
                other => {
                    return Err(DataError::Config(format!(
                        "{}: a categorical feature is one column, found {other:?}",
                        file.display()
                    )));
                }
            }
        }
        let source = &CsvSource {
            features,
            label,
            ..source.clone()
        };
        for columns in [&source.features, &source.label] {
            if let Columns::Range { end, .. } = columns
                && *end > width
            {
                return Err(DataError::NoSuchColumn {
                    file: file.clone(),
                    row: first_row,
                    column: *end,
                    width,
                });
            }
        }
        let labels = match &source.label {
            Columns::Rest => {
                return Err(DataError::Config(format!(
                    "{}: the label columns cannot be `rest`; name them",
                    file.display()
                )));
            }
            columns => expand(columns, width, &[]),
        };
        let features = expand(&source.features, width, &labels);
        for &column in labels.iter().chain(&features) {
            if column >= width {
                return Err(DataError::NoSuchColumn {
                    file: file.clone(),
                    row: first_row,
                    column: column + 1,
                    width,
                });
            }
        }
        if let Some(column) = features.iter().find(|c| labels.contains(c)) {
            return Err(DataError::Config(format!(
                "{}: column {} is configured both as a feature and as a label",
                file.display(),
                column + 1
            )));
        }
        if features.is_empty() {
            return Err(DataError::Config(format!(
                "{}: no feature columns are configured (rows have {width} columns)",
                file.display()
            )));
        }
        if labels.len() != 1 && matches!(source.task, Task::Classify { .. }) {
            return Err(DataError::Config(format!(
                "{}: classification needs exactly one label column, {} are configured",
                file.display(),
                labels.len()
            )));
        }
        if let Some(column) = categorical
            .iter()
            .find(|c| features.contains(c) || labels.contains(c))
        {
            return Err(DataError::Config(format!(
                "{}: column {} is configured both as a categorical feature and as a numeric feature or label",
                file.display(),
                column + 1
            )));
        }
        Ok(Layout {
            features,
            labels,
            categorical,
        })
    }
}

fn expand(columns: &Columns, width: usize, exclude: &[usize]) -> Vec<usize> {
    match columns {
        Columns::List(list) => list.clone(),
        Columns::Range { start, end } => (*start..*end).collect(),
        Columns::Last => vec![width.saturating_sub(1)],
        Columns::Rest => (0..width).filter(|c| !exclude.contains(c)).collect(),
        // Resolved through the header before.
        Columns::Named(_) => Vec::new(),
    }
}

/// Values parsed from one chunk of rows.
struct Parsed {
    features: Vec<f32>,
    labels: Vec<f64>,
}

fn parse_rows(
    file: &Path,
    lines: &[Line<'_>],
    source: &CsvSource,
    layout: &Layout,
    width: usize,
    first_row: usize,
) -> Result<Parsed, DataError> {
    let mut parsed = Parsed {
        features: Vec::with_capacity(lines.len() * layout.features.len()),
        labels: Vec::with_capacity(lines.len() * layout.labels.len()),
    };
    let mut cells: Vec<&[u8]> = Vec::with_capacity(width);
    for line in lines {
        cells.clear();
        cells.extend(split_cells(line.text, source.delimiter));
        if cells.len() != width {
            return Err(DataError::RaggedRow {
                file: file.to_path_buf(),
                row: line.row,
                first_row,
                expected: width,
                found: cells.len(),
            });
        }
        let not_a_number = |column: usize| {
            let hint = if line.row == first_row && !source.header {
                " (if this row is a header, set header: true)"
            } else {
                ""
            };
            DataError::NotANumber {
                file: file.to_path_buf(),
                row: line.row,
                column: column + 1,
                cell: String::from_utf8_lossy(clean(cells[column])).into_owned(),
                hint,
            }
        };
        for &column in &layout.features {
            let value = parse_number::<f32>(cells[column])
                .filter(|v| v.is_finite())
                .ok_or_else(|| not_a_number(column))?;
            parsed.features.push(value);
        }
        for (&column, category) in layout.categorical.iter().zip(&source.categorical) {
            let cell = String::from_utf8_lossy(clean(cells[column]));
            let at = category
                .values
                .binary_search_by(|v| v.as_str().cmp(&cell))
                .map_err(|_| DataError::UnknownCategory {
                    file: file.to_path_buf(),
                    row: line.row,
                    column: column + 1,
                    value: cell.clone().into_owned(),
                    expected: category.values.join(", "),
                })?;
            parsed
                .features
                .extend((0..category.values.len()).map(|k| if k == at { 1.0 } else { 0.0 }));
        }
        for &column in &layout.labels {
            let value = match &source.class_names {
                Some(names) => {
                    let cell = String::from_utf8_lossy(clean(cells[column]));
                    let class = names.binary_search_by(|n| n.as_str().cmp(&cell));
                    class.map_err(|_| DataError::BadLabel {
                        file: file.to_path_buf(),
                        row: line.row,
                        column: Some(column + 1),
                        label: cell.clone().into_owned(),
                        expected: format!("one of the classes {}", names.join(", ")),
                    })? as f64
                }
                None => parse_number::<f64>(cells[column]).ok_or_else(|| not_a_number(column))?,
            };
            parsed.labels.push(value);
        }
    }
    Ok(parsed)
}

/// Trims spaces and one pair of surrounding double quotes.
fn clean(cell: &[u8]) -> &[u8] {
    let cell = cell.trim_ascii();
    cell.strip_prefix(b"\"")
        .and_then(|c| c.strip_suffix(b"\""))
        .map_or(cell, <[u8]>::trim_ascii)
}

/// [`clean`] for a text cell, as the check reads headers and labels (the same cell the
/// data stages will see).
pub(crate) fn clean_text(cell: &str) -> &str {
    // `clean` only strips ASCII bytes from the ends, so the rest is still UTF-8.
    std::str::from_utf8(clean(cell.as_bytes())).unwrap_or(cell)
}

fn parse_number<T: std::str::FromStr>(cell: &[u8]) -> Option<T> {
    std::str::from_utf8(clean(cell)).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(source: &CsvSource, text: &str) -> Result<Dataset, DataError> {
        source.parse(text.as_bytes())
    }

    #[test]
    fn parses_features_and_last_column_label() {
        let source = CsvSource::new("t.csv");
        let data = parse(&source, "1,2,0\n3,4,1\r\n\n5, \"6\" ,2\n").unwrap();
        assert_eq!(data.features, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(data.labels, vec![0, 1, 2]);
        assert_eq!(data.classes, 3);
        assert_eq!(data.shape, vec![2]);
    }

    #[test]
    fn header_column_lists_ranges_and_shape() {
        let source = CsvSource {
            header: true,
            delimiter: b';',
            features: Columns::Range { start: 1, end: 5 },
            label: Columns::List(vec![0]),
            task: Task::Classify { classes: Some(4) },
            shape: Some(vec![2, 2]),
            ..CsvSource::new("h.csv")
        };
        let data = parse(&source, "label;a;b;c;d;name\n3;1;2;3;4;x\n0;5;6;7;8;y\n").unwrap();
        assert_eq!(data.shape, vec![2, 2]);
        assert_eq!(data.labels, vec![3, 0]);
        assert_eq!(data.classes, 4);
        assert_eq!(data.features[4..], [5.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    fn quoted_cells_hold_commas() {
        let cells: Vec<&[u8]> = split_cells(br#"1,"Smith, J.",x"",3,"a ""b"", c""#, b',').collect();
        assert_eq!(
            cells,
            vec![
                &b"1"[..],
                br#""Smith, J.""#,
                br#"x"""#,
                b"3",
                br#""a ""b"", c""#
            ]
        );
        let mut source = CsvSource::new("people.csv");
        source.header = true;
        source.features = Columns::Named(vec!["age".into(), "height".into()]);
        source.label = Columns::Named(vec!["group".into()]);
        source.class_names = Some(vec!["a, b".into(), "c".into()]);
        source.task = Task::Classify { classes: Some(2) };
        let data = parse(
            &source,
            "name,age,height,group\n\"Smith, J.\",41,1.8,\"a, b\"\n\"Li, K.\",35,1.7,c\n",
        )
        .unwrap();
        assert_eq!(data.features, vec![41.0, 1.8, 35.0, 1.7]);
        assert_eq!(data.labels, vec![0, 1]);
    }

    #[test]
    fn regression_targets() {
        let source = CsvSource {
            features: Columns::List(vec![0]),
            label: Columns::Range { start: 1, end: 3 },
            task: Task::Regress,
            ..CsvSource::new("r.csv")
        };
        let data = parse(&source, "\u{feff}1,0.5,-2\n2,1.5,7\n").unwrap();
        assert_eq!(data.targets, Some(vec![0.5, -2.0, 1.5, 7.0]));
        assert_eq!(data.target_width, 2);
        assert!(data.labels.is_empty());
        let error = parse(&source, "1,0.5,-2\n2,1.5,inf\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("r.csv: row 2, column 3: expected a finite number"),
            "{error}"
        );
    }

    #[test]
    fn bad_rows_are_located() {
        let source = CsvSource::new("bad.csv");
        let cases = [
            (
                "1,2,0\n1,2\n",
                "bad.csv: row 2: expected 3 columns (as in row 1), found 2",
            ),
            (
                "1,2,0\n\n1,x,1\n",
                "bad.csv: row 3, column 2: expected a finite number, found \"x\"",
            ),
            ("1,2,0\n1,nan,1\n", "row 2, column 2"),
            (
                "1,2,0\n1,2,-1\n",
                "bad.csv: row 2, column 3: label -1 is not one of the classes",
            ),
            ("1,2,0\n1,2,1.5\n", "row 2, column 3: label 1.5"),
            ("a,b,c\n1,2,0\n", "set header: true"),
            ("\n\n", "bad.csv: the file is empty"),
        ];
        for (text, expected) in cases {
            let error = parse(&source, text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let header_only = CsvSource {
            header: true,
            ..CsvSource::new("h.csv")
        };
        let error = parse(&header_only, "a,b\n").unwrap_err().to_string();
        assert!(error.contains("no data rows"), "{error}");
    }

    #[test]
    fn label_out_of_configured_range() {
        let source = CsvSource {
            task: Task::Classify { classes: Some(2) },
            ..CsvSource::new("c.csv")
        };
        let error = parse(&source, "1,0\n1,1\n1,2\n").unwrap_err().to_string();
        assert!(error.contains("c.csv: row 3, column 2: label 2"), "{error}");
        assert!(error.contains("0..2"), "{error}");
    }

    #[test]
    fn configuration_mistakes() {
        let beyond = CsvSource {
            features: Columns::List(vec![0, 7]),
            ..CsvSource::new("w.csv")
        };
        let error = parse(&beyond, "1,2,0\n").unwrap_err().to_string();
        assert!(
            error.contains("column 8 is configured but rows have only 3"),
            "{error}"
        );
        let huge_range = CsvSource {
            features: Columns::Range {
                start: 0,
                end: usize::MAX,
            },
            ..CsvSource::new("r.csv")
        };
        let error = parse(&huge_range, "1,2,0\n").unwrap_err().to_string();
        assert!(error.contains("r.csv: row 1: column"), "{error}");
        let huge_shape = CsvSource {
            shape: Some(vec![usize::MAX, 2]),
            ..CsvSource::new("s.csv")
        };
        assert!(parse(&huge_shape, "1,2,0\n").is_err());
        let bad_shape = CsvSource {
            shape: Some(vec![3]),
            ..CsvSource::new("s.csv")
        };
        assert!(parse(&bad_shape, "1,2,0\n").is_err());
        let overlap = CsvSource {
            features: Columns::List(vec![0, 2]),
            ..CsvSource::new("o.csv")
        };
        assert!(parse(&overlap, "1,2,0\n").is_err());
    }

    #[test]
    fn many_rows_keep_file_order_and_first_error() {
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&format!("{i},{}\n", i % 3));
        }
        let data = parse(&CsvSource::new("big.csv"), &text).unwrap();
        assert_eq!(data.len(), 2000);
        assert_eq!(data.features[1999], 1999.0);
        let mut broken = text.clone();
        broken.push_str("x,1\n1\n");
        let lines: Vec<&str> = broken.lines().collect();
        let mut swapped = lines[..300].to_vec();
        swapped.push("1");
        swapped.extend_from_slice(&lines[300..]);
        let error = parse(&CsvSource::new("big.csv"), &swapped.join("\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("row 301:"), "{error}");
    }
}
