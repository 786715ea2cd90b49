//! The tests stay shaped like the features: no file of them outgrows a reading; a
//! longer one is split by what it proves, its fixtures moved to `helpers/`.

use std::path::{Path, PathBuf};

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

#[test]
fn no_test_file_is_longer_than_400_lines() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let files = rust_files(&tests);
    assert!(files.len() > 20, "the test files were read: {files:?}");
    let long: Vec<String> = files
        .iter()
        .map(|file| (std::fs::read_to_string(file).unwrap().lines().count(), file))
        .filter(|(lines, _)| *lines > 400)
        .map(|(lines, file)| format!("{} ({lines} lines)", file.strip_prefix(&tests).unwrap().display()))
        .collect();
    assert!(long.is_empty(), "split these by what they prove: {long:?}");
}
