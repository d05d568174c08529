//! The `credvault` command.

fn main() -> std::process::ExitCode {
    credvault::cli::main()
}
