//! The usage bridge alone: `tally-bridge --help`.

fn main() -> anyhow::Result<()> {
    tally::run_service(tally::cli::Service::Bridge(
        <tally::cli::BridgeArgs as clap::Parser>::parse(),
    ))
}
