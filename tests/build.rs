//! PostgreSQL contract tests are compiled in as ignored tests unless `TALLY_TEST_POSTGRES_URL`
//! is set, so `cargo test` lists them as ignored (with the reason) rather than passing silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=TALLY_TEST_POSTGRES_URL");
    match std::env::var("TALLY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => println!("cargo::rustc-cfg=postgres_tests"),
        _ => println!(
            "cargo::warning=TALLY_TEST_POSTGRES_URL is not set: the PostgreSQL contract tests are ignored (SQLite ones run)"
        ),
    }
}
