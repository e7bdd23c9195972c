//! `tally`: every service in one process (`serve`, `demo`), or one service alone.

fn main() -> anyhow::Result<()> {
    tally::run(<tally::cli::Cli as clap::Parser>::parse())
}
