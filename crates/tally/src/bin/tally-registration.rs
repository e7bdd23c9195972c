//! The registration service alone: `tally-registration --help`.

fn main() -> anyhow::Result<()> {
    tally::run_service(tally::cli::Service::Registration(
        <tally::cli::RegistrationArgs as clap::Parser>::parse(),
    ))
}
