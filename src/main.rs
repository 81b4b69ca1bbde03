//! The `civitas` binary: parses the command line and hands over to [`civitas::cli`].

fn main() -> std::process::ExitCode {
    civitas::cli::main()
}
