//! Arbitrary and mutated YAML never panics validation: it is valid, or it is rejected
//! with diagnostics.

use engine::diag::Sources;
use engine::{LoadError, parse};
use proptest::prelude::*;

const BASE: &str = include_str!("valid_base.yaml");

fn validate(text: &str) -> Result<(), usize> {
    let mut sources = Sources::default();
    let id = sources.add("fuzz.yaml", text.to_string());
    let parsed = parse::parse_pipeline(
        &mut sources,
        id,
        std::path::Path::new("tests/fuzz.yaml"),
        &[],
    )
    .map_err(|d| d.len())?;
    engine::check::check_pipeline(parsed)
        .map(|_| ())
        .map_err(|d| d.len())
}

/// Line-level mutations of the valid base pipeline.
fn mutate(lines: &[&str], edits: &[(usize, u8, String)]) -> String {
    let mut lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for (at, op, text) in edits {
        if lines.is_empty() {
            break;
        }
        let i = at % lines.len();
        match op % 5 {
            0 => {
                lines.remove(i);
            }
            1 => lines.insert(i, text.clone()),
            2 => lines[i] = text.clone(),
            3 => {
                let dup = lines[i].clone();
                lines.insert(i, dup);
            }
            _ => {
                let line = &lines[i];
                let cut = (text.len() % (line.len() + 1)).min(line.len());
                let cut = (0..=cut)
                    .rev()
                    .find(|c| line.is_char_boundary(*c))
                    .unwrap_or(0);
                lines[i] = format!("{}{}", &line[..cut], text);
            }
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = validate(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "([a-z_]{1,8}: (\\[|\\{|-|[0-9.e-]{1,6}|[a-z_.]{1,10}|\\]|\\})\n {0,4}){0,20}") {
        let _ = validate(&text);
    }

    #[test]
    fn mutated_pipelines_never_panic(edits in prop::collection::vec((0usize..200, 0u8..5, "[ -~]{0,24}"), 1..6)) {
        let lines: Vec<&str> = BASE.lines().collect();
        let text = mutate(&lines, &edits);
        match validate(&text) {
            Ok(()) => {}
            Err(n) => prop_assert!(n > 0),
        }
    }
}

#[test]
fn base_is_valid() {
    assert_eq!(validate(BASE), Ok(()));
    let _ = LoadError::Io(String::new());
}
