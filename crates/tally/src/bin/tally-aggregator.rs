//! The aggregator service alone: `tally-aggregator --help`.

fn main() -> anyhow::Result<()> {
    tally::run_service(tally::cli::Service::Aggregator(
        <tally::cli::AggregatorArgs as clap::Parser>::parse(),
    ))
}
