//! `bitgate`: the server (`bitgate serve`, or no command) and the CLI.

fn main() -> std::process::ExitCode {
    bitgate_server::cli::main()
}
