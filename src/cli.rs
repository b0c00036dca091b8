//! Command-line definitions (clap derive only; the doc comments are the help text). No IO.

use clap::Parser;

/// Obtain and renew S/MIME certificates automatically over ACME (RFC 8823).
///
/// smime-acme orders a certificate for an email address from an ACME certificate authority,
/// answers the CA's challenge email from your mailbox over IMAP and SMTP, and saves the
/// certificate and its key as a PKCS#12 bundle that mail clients import.
#[derive(Debug, Parser)]
#[command(
    name = "smime-acme",
    version,
    about,
    long_about,
    arg_required_else_help = true
)]
pub struct Cli {}
