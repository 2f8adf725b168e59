//! docs/benchmarks.md: each benchmark owns one generated section between marker comments, so
//! benchmarks (and hand-written sections such as "Batch calls to 1C") never overwrite each
//! other. Figures are also kept as JSON in target/bench/ for the cost model.

use anyhow::Context as _;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn begin_marker(name: &str) -> String {
    format!("<!-- BEGIN generated:{name} (make bench) -->")
}

pub fn end_marker(name: &str) -> String {
    format!("<!-- END generated:{name} -->")
}

/// `text` with the section `name` replaced by `body`; appended at the end when absent.
pub fn replace_section(text: &str, name: &str, body: &str) -> String {
    let begin = begin_marker(name);
    let end = end_marker(name);
    let block = format!("{begin}\n{}\n{end}", body.trim_end());
    match (text.find(&begin), text.find(&end)) {
        (Some(start), Some(stop)) if stop > start => {
            format!("{}{block}{}", &text[..start], &text[stop + end.len()..])
        }
        _ => {
            let mut out = text.trim_end().to_owned();
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&block);
            out.push('\n');
            out
        }
    }
}

pub fn workspace_root() -> PathBuf {
    local_stack::moto::workspace_root()
}

pub fn doc_path() -> PathBuf {
    workspace_root().join("docs/benchmarks.md")
}

/// Rewrites one section of docs/benchmarks.md.
pub fn write_section(name: &str, body: &str) -> anyhow::Result<()> {
    let path = doc_path();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, replace_section(&text, name, body))
        .with_context(|| format!("writing {}", path.display()))?;
    println!("{}: section `{name}` updated", path.display());
    Ok(())
}

fn figures_path(name: &str) -> PathBuf {
    workspace_root().join(format!("target/bench/{name}.json"))
}

pub fn save_figures(name: &str, figures: &Value) -> anyhow::Result<()> {
    let path = figures_path(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(figures)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The figures a benchmark saved, if it ran.
pub fn load_figures(name: &str) -> Option<Value> {
    read_json(&figures_path(name))
}

pub fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_appended_once_and_then_replaced_in_place_keeping_other_sections() {
        // Given a document with a hand-written section
        let text = "# Benchmarks\n\n## Batch calls to 1C\nhand-written\n";
        // When a generated section is written twice
        let once = replace_section(text, "cold-start", "first");
        let twice = replace_section(&once, "cold-start", "second");
        // Then it appears once, with the latest body, and the other section is intact
        assert_eq!(twice.matches(&begin_marker("cold-start")).count(), 1);
        assert!(twice.contains("second") && !twice.contains("first"));
        assert!(twice.contains("## Batch calls to 1C\nhand-written\n"));
        assert!(twice.find("hand-written") < twice.find("second"));
    }
}
