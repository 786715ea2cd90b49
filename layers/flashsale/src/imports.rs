//! The crate's shape, checked: imports between its top-level modules run one way (no
//! circle), every module is on the maps (this crate's documentation and
//! `docs/architecture.md`), and no file outgrows a reading. Read from the sources, so a
//! new module, import or long file is checked the day it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level module each file under `src/` belongs to, and the modules its code
/// (not its comments, not its tests) names as `crate::<module>`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let reexports = reexports(&src);
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "imports" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let named = imports.entry(module.clone()).or_default();
        for line in text.lines().map(str::trim).take_while(|line| !line.starts_with("#[cfg(test)]")) {
            if line.starts_with("//") {
                continue;
            }
            for (at, _) in line.match_indices("crate::") {
                let rest = &line[at + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let target = if modules.contains(&name) {
                    name
                } else {
                    let from = reexports.get(&name);
                    from.unwrap_or_else(|| panic!("crate::{name} is no module or re-export of lib.rs")).clone()
                };
                if target != module {
                    named.insert(target);
                }
            }
        }
    }
    imports
}

/// The modules `lib.rs` declares.
fn modules(src: &Path) -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    lib.lines().filter_map(|line| line.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';').to_string()).collect()
}

/// The names `lib.rs` re-exports at the crate's root (`pub use module::{A, B};`), each
/// with the module it comes from.
fn reexports(src: &Path) -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut reexports = BTreeMap::new();
    for line in lib.lines().filter_map(|line| line.strip_prefix("pub use ")) {
        let (module, names) = line.trim_end_matches(';').split_once("::").unwrap();
        for name in names.trim_matches(['{', '}']).split(',').map(str::trim) {
            reexports.insert(name.to_string(), module.to_string());
        }
    }
    reexports
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// A circle of imports, if there is one: a module that reaches itself.
fn circle(imports: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        imports: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut circle = path[start..].to_vec();
            circle.push(module.to_string());
            return Some(circle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in imports.get(module).into_iter().flatten() {
            if let Some(circle) = visit(next, imports, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    imports.keys().find_map(|module| visit(module, imports, &mut Vec::new(), &mut done))
}

#[test]
fn imports_run_one_way() {
    let imports = imports();
    assert!(imports.len() > 10, "the modules were read: {imports:?}");
    if let Some(circle) = circle(&imports) {
        panic!("imports go round in a circle: {}", circle.join(" -> "));
    }
    // The domain is the bottom layer: it names no other module of the crate.
    assert_eq!(imports["domain"], BTreeSet::new(), "domain imports only itself");
}

#[test]
fn a_circle_is_found() {
    let edges = |pairs: &[(&str, &str)]| {
        let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in pairs {
            imports.entry(from.to_string()).or_default().insert(to.to_string());
            imports.entry(to.to_string()).or_default();
        }
        imports
    };
    assert_eq!(circle(&edges(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    let found = circle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])).expect("a -> b -> c -> a");
    assert_eq!(found.first(), found.last());
    assert_eq!(found.len(), 4);
}

#[test]
fn every_module_is_on_the_maps() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let architecture = std::fs::read_to_string(src.join("../../../docs/architecture.md")).unwrap();
    for module in modules(&src) {
        assert!(lib.contains(&format!("[`{module}`]")), "lib.rs's map does not name `{module}`");
        assert!(architecture.contains(&format!("`{module}")), "docs/architecture.md does not name `{module}`");
    }
}

#[test]
fn no_file_of_the_layer_is_longer_than_400_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = rust_files(&src)
        .into_iter()
        .map(|file| (std::fs::read_to_string(&file).unwrap().lines().count(), file))
        .filter(|(lines, _)| *lines > 400)
        .map(|(lines, file)| format!("{} ({lines} lines)", file.strip_prefix(&src).unwrap().display()))
        .collect();
    assert!(long.is_empty(), "split these by what they do: {long:?}");
}
