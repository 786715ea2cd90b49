//! The documents hold together: every relative link in the README and in `docs/` leads
//! to a file of the repository, and every `#anchor` to a heading of the page it names.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// The Markdown documents a reader is sent to.
fn documents() -> Vec<PathBuf> {
    let repo = repo();
    let mut documents = vec![repo.join("README.md"), repo.join("BENCHMARKS.md")];
    for entry in std::fs::read_dir(repo.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    documents
}

/// The lines outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// Every `[text](target)` of a line, inline code spans left out.
fn links(line: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut in_code = false;
    let mut rest = line;
    while let Some(i) = rest.find(['`', ']']) {
        let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        if c == b'`' {
            in_code = !in_code;
        } else if !in_code && after.starts_with('(') {
            if let Some(end) = after.find(')') {
                links.push(after[1..end].split_whitespace().next().unwrap_or("").to_string());
            }
        }
        rest = after;
    }
    links
}

/// A heading's anchor as GitHub makes it: lower case, spaces to hyphens, other
/// punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(document: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(document).unwrap();
    prose(&text).filter_map(|line| line.strip_prefix('#')).map(|h| anchor(h.trim_start_matches('#'))).collect()
}

/// What is wrong with `link` in `document`, if anything.
fn broken(document: &Path, link: &str) -> Option<String> {
    if link.is_empty() || link.contains("://") || link.starts_with("mailto:") {
        return None;
    }
    let (path, fragment) = link.split_once('#').map_or((link, None), |(p, f)| (p, Some(f)));
    let target = if path.is_empty() { document.to_path_buf() } else { document.parent().unwrap().join(path) };
    if !target.exists() {
        return Some(format!("{link}: no such file"));
    }
    match fragment {
        Some(fragment)
            if target.extension().is_some_and(|e| e == "md") && !anchors(&target).iter().any(|a| a == fragment) =>
        {
            Some(format!("{link}: no heading #{fragment} in {}", target.display()))
        }
        _ => None,
    }
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let mut broken_links = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        for link in prose(&text).flat_map(links) {
            checked += 1;
            if let Some(why) = broken(&document, &link) {
                broken_links.push(format!("{}: {why}", document.strip_prefix(repo()).unwrap().display()));
            }
        }
    }
    assert!(checked > 10, "the documents' links were read ({checked})");
    assert!(broken_links.is_empty(), "broken links:\n{}", broken_links.join("\n"));
}

#[test]
fn a_broken_link_is_found() {
    let readme = repo().join("README.md");
    assert_eq!(
        links("see [the map](docs/architecture.md#fault-matrix) and `[a](b)`"),
        ["docs/architecture.md#fault-matrix"]
    );
    assert_eq!(anchor(" Load, audit, benchmarks"), "load-audit-benchmarks");
    assert_eq!(broken(&readme, "docs/architecture.md"), None);
    assert_eq!(broken(&readme, "https://example.com/nowhere"), None);
    assert!(broken(&readme, "docs/nowhere.md").is_some());
    assert!(broken(&readme, "docs/architecture.md#no-such-heading").is_some());
}
