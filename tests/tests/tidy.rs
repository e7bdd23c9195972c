//! Architecture invariants, checked on every `cargo test`:
//! - dependencies point inward: `tally-core` knows no wire, database or runtime; `tally-store`
//!   knows no protobuf; services never depend on each other; the gateway owns no tables;
//! - every crate root says what the crate is (`//!`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
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
    assert_free_of(&deps, "tally-proto", &["sea-orm", "tally-store"]);
    let services = ["tally-aggregator", "tally-registration", "tally-gateway"];
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
    ] {
        assert_free_of(&deps, library, &["anyhow"]);
    }
}

#[test]
fn every_crate_root_documents_itself() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
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
