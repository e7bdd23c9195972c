//! Architecture invariants, checked on every `cargo test`:
//! - dependencies point inward: `tally-core` knows no wire, database or runtime; `tally-store`
//!   knows no protobuf; services never depend on each other; the gateway owns no tables;
//! - every Rust file says what it is for (`//!`);
//! - ARCHITECTURE.md's code map names every module, and only modules that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Normal (non-dev) dependencies of every workspace package.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let metadata = workspace();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

fn assert_free_of(deps: &BTreeMap<String, BTreeSet<String>>, package: &str, forbidden: &[&str]) {
    let found: Vec<_> = forbidden
        .iter()
        .filter(|f| deps[package].contains(**f))
        .collect();
    assert!(found.is_empty(), "{package} must not depend on {found:?}");
}

#[test]
fn dependencies_point_inward() {
    let deps = dependencies();
    assert_free_of(
        &deps,
        "tally-core",
        &[
            "tonic",
            "prost",
            "prost-types",
            "sea-orm",
            "sqlx",
            "tokio",
            "serde",
            "serde_json",
            "tally-proto",
            "tally-store",
        ],
    );
    assert_free_of(&deps, "tally-store", &["tonic", "prost", "tally-proto"]);
    // Export encoders are pure: rows in, bytes into a std::io::Write out.
    assert_free_of(
        &deps,
        "tally-export",
        &[
            "tonic",
            "prost",
            "tokio",
            "sea-orm",
            "tally-proto",
            "tally-store",
        ],
    );
    assert_free_of(&deps, "tally-proto", &["sea-orm", "tally-store"]);
    let services = [
        "tally-aggregator",
        "tally-registration",
        "tally-gateway",
        "tally-bridge",
        "tally-commerce-receiver",
    ];
    for service in services {
        assert_free_of(&deps, service, &services);
    }
    assert_free_of(
        &deps,
        "tally-gateway",
        &["tally-store", "sea-orm", "tally-migrations"],
    );
    for library in [
        "tally-core",
        "tally-proto",
        "tally-store",
        "tally-aggregator",
        "tally-registration",
        "tally-gateway",
        "tally-bridge",
        "tally-commerce-receiver",
    ] {
        assert_free_of(&deps, library, &["anyhow"]);
    }
}

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The source folders the code map describes, by the heading of their section.
fn mapped_folders() -> Vec<(String, Vec<PathBuf>)> {
    let root = root();
    let mut folders = vec![
        ("migrations/".to_string(), vec![root.join("migrations/src")]),
        (
            "tests/".to_string(),
            vec![root.join("tests/src"), root.join("tests/tests")],
        ),
        ("xtask/".to_string(), vec![root.join("xtask/src")]),
    ];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        folders.push((format!("crates/{name}"), vec![dir.join("src")]));
    }
    folders
}

#[test]
fn every_file_says_what_it_is_for() {
    let undocumented: Vec<String> = mapped_folders()
        .into_iter()
        .flat_map(|(_, dirs)| dirs)
        .flat_map(|dir| rust_files(&dir))
        .filter(|file| !std::fs::read_to_string(file).unwrap().starts_with("//!"))
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "these files do not open with a //! comment saying what they are for: {undocumented:#?}"
    );
}

/// The code map's section for each heading (`### \`crates/tally-core\``): the backticked names in it.
fn code_map() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let map = text
        .split("\n## ")
        .find(|section| section.starts_with("Code map"))
        .expect("ARCHITECTURE.md has a Code map section");
    map.split("\n### ")
        .skip(1)
        .map(|section| {
            let (heading, body) = section.split_once('\n').unwrap_or((section, ""));
            let names = body
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|name| !name.contains(' '))
                .map(str::to_string)
                .collect();
            (heading.trim().trim_matches('`').to_string(), names)
        })
        .collect()
}

#[test]
fn the_code_map_names_every_module_and_only_modules_that_exist() {
    let map = code_map();
    let mut problems = Vec::new();
    for (heading, dirs) in mapped_folders() {
        let Some(names) = map.get(&heading) else {
            problems.push(format!("the code map has no section `{heading}`"));
            continue;
        };
        let files: Vec<PathBuf> = dirs.iter().flat_map(|d| rust_files(d)).collect();
        for file in &files {
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            let parent = file
                .parent()
                .and_then(|p| p.file_name())
                .map(|p| format!("{}/", p.to_string_lossy()))
                .unwrap_or_default();
            let crate_root = matches!(name.as_str(), "lib.rs" | "main.rs")
                && dirs.iter().any(|d| file.parent() == Some(d.as_path()));
            let named = names.contains(&name)
                || names.iter().any(|n| n.ends_with(&format!("/{name}")))
                || names.contains(&parent);
            if !crate_root && !named {
                problems.push(format!(
                    "`{heading}`: the code map does not name {}",
                    file.display()
                ));
            }
        }
        for name in names
            .iter()
            .filter(|n| n.ends_with(".rs") && !n.contains('<'))
        {
            let exists = root().join(name).is_file()
                || files.iter().any(|f| {
                    f.to_string_lossy().ends_with(&format!("/{name}"))
                        || f.file_name().is_some_and(|f| f.to_string_lossy() == *name)
                });
            if !exists {
                problems.push(format!(
                    "`{heading}`: the code map names `{name}`, which does not exist"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_crate_root_documents_itself() {
    let root = root();
    let mut roots = vec![
        root.join("migrations/src/lib.rs"),
        root.join("tests/src/lib.rs"),
        root.join("xtask/src/main.rs"),
    ];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        for file in ["src/lib.rs", "src/main.rs"] {
            if dir.join(file).is_file() {
                roots.push(dir.join(file));
            }
        }
    }
    for file in roots {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} does not start with a //! comment",
            file.display()
        );
    }
}
