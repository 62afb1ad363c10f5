//! The generated crates under gateways/ are golden files: each must be exactly what the generator makes from its
//! spec today (the e2e tests then build and run them). `cargo xtask generate` rewrites them.

use std::path::{Path, PathBuf};

use gateway_codegen::{Options, SpecInput, generate};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn generated_gateways_match_their_specs() {
    let specs = root().join("specs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&specs).expect("specs/ exists").flatten() {
        let path = entry.path();
        if !path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable spec");
        let file = format!(
            "specs/{}",
            path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        );
        let generated = generate(
            SpecInput {
                file: &file,
                text: &text,
            },
            &Options::default(),
        )
        .unwrap_or_else(|e| panic!("{file} does not generate: {e}"));
        let dir = root().join("gateways").join(&generated.name);
        for (rel, expected) in &generated.files {
            let actual = std::fs::read_to_string(dir.join(rel))
                .unwrap_or_else(|_| panic!("{} is missing: run `cargo xtask generate`", dir.join(rel).display()));
            assert!(
                actual == *expected,
                "{} is stale: run `cargo xtask generate`",
                dir.join(rel).display()
            );
        }
        let on_disk = files_under(&dir).len();
        assert_eq!(
            on_disk,
            generated.files.len(),
            "{} holds files the generator does not make",
            dir.display()
        );
        checked += 1;
    }
    assert!(checked > 0, "no specs found in {}", specs.display());
}
