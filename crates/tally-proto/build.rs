//! Compiles `proto/` with protox (pure Rust, no system protoc) and keeps the descriptor set for
//! reflection, which also describes the google.rpc error details Tally returns.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let contracts = [
        "tally/usage/v1/usage.proto",
        "tally/registration/v1/registration.proto",
        "tally/clock/v1/clock.proto",
        "tally/billing/v1/billing.proto",
    ];
    let described = contracts
        .iter()
        .copied()
        .chain(["google/rpc/error_details.proto"]);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("tally_descriptor.bin"),
        prost::Message::encode_to_vec(&protox::compile(described, [&root])?),
    )?;
    tonic_prost_build::configure()
        .btree_map(".")
        .compile_fds(protox::compile(contracts, [&root])?)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
