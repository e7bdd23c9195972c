//! The reference commerce receiver alone: `tally-commerce-receiver --help`.

fn main() -> anyhow::Result<()> {
    tally::run_service(tally::cli::Service::CommerceReceiver(
        <tally::cli::ReceiverArgs as clap::Parser>::parse(),
    ))
}
