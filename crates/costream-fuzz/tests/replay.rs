//! Replays every fuzz corpus and regression input through its target, on
//! stable, as part of the normal test suite. `scripts/fuzz` runs the
//! targets for longer under libFuzzer.

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of a directory, sorted; empty if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8]), dir: &Path) -> usize {
    let inputs = files(dir);
    for path in &inputs {
        let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Name the input before running it, so a failure says which one.
        eprintln!("{target}: {}", path.display());
        run(&data);
    }
    inputs.len()
}

#[test]
fn every_corpus_replays() {
    let fuzz = fuzz_dir();
    let mut empty = Vec::new();
    for &(target, run) in costream_fuzz::TARGETS {
        // A missing or empty corpus would make this test pass on nothing.
        let n = replay(target, run, &fuzz.join("corpus").join(target));
        if n == 0 {
            empty.push(target);
        }
        replay(target, run, &fuzz.join("regressions").join(target));
        println!("{target}: {n} corpus inputs");
    }
    assert!(
        empty.is_empty(),
        "no corpus for {empty:?} under {}",
        fuzz.display()
    );
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for &(target, _) in costream_fuzz::TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        assert!(file.is_file(), "{} is missing", file.display());
    }
}

#[test]
fn regression_dirs_name_targets() {
    // A regression input under a misspelt directory would never be replayed.
    let Ok(entries) = fs::read_dir(fuzz_dir().join("regressions")) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            costream_fuzz::TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/regressions/{name} is not a target"
        );
    }
}
