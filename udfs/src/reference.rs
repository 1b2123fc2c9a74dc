//! The SQL function reference in the README, generated from each function's
//! DataFusion `Documentation`.
//!
//! [`reference_markdown`] renders every function of [`crate::functions`] sorted
//! by name. A unit test compares it with the README section between
//! `<!-- sql-functions:begin -->` and `<!-- sql-functions:end -->` and fails when
//! it is stale; run the test with `CRMDB_UPDATE_DOCS=1` to rewrite the section:
//!
//! ```text
//! CRMDB_UPDATE_DOCS=1 cargo test -p crmdb-udfs -p crmdb --lib -- reference
//! ```

use std::fmt::Write as _;

use datafusion::logical_expr::Documentation;

/// The line that opens the generated section in README.md.
pub const BEGIN_MARKER: &str = "<!-- sql-functions:begin -->";
/// The line that closes the generated section in README.md.
pub const END_MARKER: &str = "<!-- sql-functions:end -->";

/// The markdown reference of every CRM SQL function (without the markers).
pub fn reference_markdown() -> String {
    let all = crate::functions();
    let mut entries: Vec<(String, &'static str, Option<&Documentation>)> = Vec::new();
    for f in &all.scalar {
        entries.push((f.name().to_string(), "scalar", f.documentation()));
    }
    for f in &all.aggregate {
        entries.push((f.name().to_string(), "aggregate", f.documentation()));
    }
    for f in &all.window {
        entries.push((f.name().to_string(), "window", f.documentation()));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));

    let mut out = String::new();
    // Writing into a String cannot fail, so the results of write! are ignored.
    out.push_str(
        "<!-- Generated from the functions' documentation by udfs/src/reference.rs; do not edit. -->\n\n",
    );
    out.push_str("| function | kind | syntax |\n|---|---|---|\n");
    for (name, kind, doc) in &entries {
        let syntax = doc
            .map(|d| d.syntax_example.replace('|', "\\|"))
            .unwrap_or_default();
        let _ = writeln!(out, "| [`{name}`](#{name}) | {kind} | `{syntax}` |");
    }
    for (name, kind, doc) in &entries {
        let _ = write!(out, "\n### {name}\n\n");
        let Some(doc) = doc else {
            let _ = writeln!(out, "*{kind} function* — no documentation.");
            continue;
        };
        let _ = write!(out, "*{kind} function*\n\n{}\n\n", doc.description.trim());
        let _ = write!(out, "```sql\n{}\n```\n", doc.syntax_example.trim());
        if let Some(args) = &doc.arguments {
            out.push_str("\n**Arguments**\n\n");
            for (arg, desc) in args {
                let _ = writeln!(out, "- `{arg}`: {}", desc.trim());
            }
        }
        if let Some(example) = &doc.sql_example {
            let _ = write!(out, "\n**Example**\n\n{}\n", example.trim());
        }
    }
    out
}

/// Replace the text between the markers of `readme` with `section`; `None` when
/// the markers are missing or out of order.
pub fn splice(readme: &str, section: &str) -> Option<String> {
    let begin = readme.find(BEGIN_MARKER)? + BEGIN_MARKER.len();
    let end = begin + readme[begin..].find(END_MARKER)?;
    Some(format!(
        "{}\n{}{}",
        &readme[..begin],
        section,
        &readme[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_lists_every_function_sorted() {
        let md = reference_markdown();
        let names: Vec<&str> = md.lines().filter_map(|l| l.strip_prefix("### ")).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for name in [
            "mask_phone",
            "pseudonymize",
            "rfm_score",
            "rfm_segment",
            "lifecycle_stage",
            "nps",
        ] {
            assert!(names.contains(&name), "{name} missing");
        }
        let all = crate::functions();
        assert_eq!(
            names.len(),
            all.scalar.len() + all.aggregate.len() + all.window.len()
        );
    }

    #[test]
    fn every_function_is_documented_with_arguments() {
        let all = crate::functions();
        let docs = all
            .scalar
            .iter()
            .map(|f| (f.name().to_string(), f.documentation()))
            .chain(
                all.aggregate
                    .iter()
                    .map(|f| (f.name().to_string(), f.documentation())),
            )
            .chain(
                all.window
                    .iter()
                    .map(|f| (f.name().to_string(), f.documentation())),
            );
        for (name, doc) in docs {
            let doc = doc.unwrap_or_else(|| panic!("{name} has no documentation"));
            assert!(
                doc.syntax_example.starts_with(&name),
                "{name}: syntax {}",
                doc.syntax_example
            );
        }
    }

    #[test]
    fn splice_replaces_only_the_section() {
        let readme = format!("a\n{BEGIN_MARKER}\nold\n{END_MARKER}\nb\n");
        assert_eq!(
            splice(&readme, "new\n").unwrap(),
            format!("a\n{BEGIN_MARKER}\nnew\n{END_MARKER}\nb\n")
        );
        assert_eq!(splice("no markers", "x"), None);
    }

    /// Fails when the README's SQL function reference is stale; with
    /// `CRMDB_UPDATE_DOCS=1` it rewrites the section instead.
    #[test]
    fn readme_reference_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let Some(want) = splice(&readme, &reference_markdown()) else {
            panic!("{path}: the lines {BEGIN_MARKER} and {END_MARKER} are missing");
        };
        if std::env::var_os("CRMDB_UPDATE_DOCS").is_some_and(|v| v == "1") {
            if want != readme {
                std::fs::write(path, &want).unwrap_or_else(|e| panic!("write {path}: {e}"));
            }
            return;
        }
        assert!(
            want == readme,
            "{path}: the SQL function reference is stale; run \
             CRMDB_UPDATE_DOCS=1 cargo test -p crmdb-udfs -p crmdb --lib -- reference"
        );
    }
}
