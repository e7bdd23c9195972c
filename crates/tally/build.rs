//! Lets the binary tests say, rather than silently pass, when PostgreSQL or grpcurl is missing:
//! without them those tests are compiled as ignored, with the reason shown by `cargo test`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rustc-check-cfg=cfg(has_grpcurl)");
    println!("cargo::rerun-if-env-changed=TALLY_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=PATH");
    if std::env::var("TALLY_TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir.join("grpcurl").is_file()) {
        println!("cargo::rustc-cfg=has_grpcurl");
    }
}
