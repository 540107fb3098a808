//! The `costream` command: `serve`, `bench`, `token`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = costream::cli::Cli::parse();
    costream::cli::run(cli)
}
