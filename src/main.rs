//! `vidcap` binary: parse the command line and hand over to `vidcap::cli`.
fn main() -> std::process::ExitCode {
    vidcap::cli::main()
}
