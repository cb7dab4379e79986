//! `indexer DIRECTORY`: index every word of a tree with forked workers, then
//! search it by fragment. See README.md for the contract.

mod cli;

fn main() {
    std::process::exit(cli::run());
}
