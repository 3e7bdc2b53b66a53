//! `bitgate`: the server (`bitgate serve`, or no command) and the CLI.

/// mimalloc, not the system's allocator: a delivery's JSON is parsed into
/// many small values, and glibc's malloc and free were a quarter of
/// Bitgate's CPU time in `scripts/bench-webhooks` at 16 clients (a 2.5 KB
/// payload, `BENCH_PROFILE`). Ingest +2 to +17 % (medians of three A/B
/// rounds); resident memory at idle 44 MiB (`scripts/bench-footprint`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bitgate_server::cli::main()
}
