//! smime-acme: an ACME client for S/MIME certificates (RFC 8823).
//!
//! `run` parses the command line and maps the outcome to the process exit status.

pub mod acme;
pub mod challenge;
pub mod cli;
pub mod keys;
pub mod mail;
pub mod tls;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

/// Parses `args` and runs the requested command, returning the process exit status.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match cli::Cli::try_parse_from(args) {
        Ok(_cli) => ExitCode::SUCCESS,
        Err(err) => {
            // Help and version go to stdout with status 0; usage errors to stderr with status 2.
            let _ = err.print();
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2))
        }
    }
}
