//! The `smime-acme` binary: parse the command line, run, exit with the documented status.

fn main() -> std::process::ExitCode {
    smime_acme::run(std::env::args_os())
}
