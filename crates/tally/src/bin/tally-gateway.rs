//! The gateway service alone: `tally-gateway --help`.

fn main() -> anyhow::Result<()> {
    tally::run_service(tally::cli::Service::Gateway(
        <tally::cli::GatewayArgs as clap::Parser>::parse(),
    ))
}
