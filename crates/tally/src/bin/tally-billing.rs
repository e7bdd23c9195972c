//! The billing service alone: `tally-billing --help`.

fn main() -> anyhow::Result<()> {
    tally::run_service(tally::cli::Service::Billing(
        <tally::cli::BillingArgs as clap::Parser>::parse(),
    ))
}
