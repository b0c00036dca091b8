//! SMTP submission of the reply (lettre): implicit TLS or STARTTLS with AUTH, or plain on
//! loopback. The message bytes are built by `challenge::response` and sent unchanged. IO.

use lettre::Transport;
use lettre::address::Envelope;
use lettre::transport::smtp::SmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::CertificateDer;

use super::{MailError, Security, Server};

/// How to reach the submission server.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub server: &'a Server,
    pub security: Security,
    pub user: &'a str,
    pub password: &'a str,
    /// Roots to trust beyond the system's (`--ca-bundle`).
    pub extra_roots: &'a [CertificateDer<'static>],
}

/// Sends `message` from `from` to `to`.
pub fn send(
    submission: &Submission<'_>,
    from: &str,
    to: &str,
    message: &[u8],
) -> Result<(), MailError> {
    let server = submission.server.to_string();
    let send_err = |reason: String| MailError::Send {
        server: server.clone(),
        reason,
    };
    let mut params = TlsParameters::builder(submission.server.host.clone());
    for root in submission.extra_roots {
        let cert = Certificate::from_der(root.to_vec()).map_err(|e| send_err(e.to_string()))?;
        params = params.add_root_certificate(cert);
    }
    let params = params.build_rustls().map_err(|e| send_err(e.to_string()))?;
    let tls = match submission.security {
        Security::Tls => Tls::Wrapper(params),
        Security::StartTls => Tls::Required(params),
        Security::Plain => Tls::None,
    };
    let helo = from
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d)
        .to_owned();
    let transport = SmtpTransport::builder_dangerous(submission.server.host.as_str())
        .port(submission.server.port)
        .tls(tls)
        .hello_name(ClientId::Domain(helo))
        .credentials(Credentials::new(
            submission.user.to_owned(),
            submission.password.to_owned(),
        ))
        .timeout(Some(std::time::Duration::from_secs(60)))
        .build();
    let envelope = Envelope::new(
        Some(
            from.parse()
                .map_err(|e| send_err(format!("sender {from:?}: {e}")))?,
        ),
        vec![
            to.parse()
                .map_err(|e| send_err(format!("recipient {to:?}: {e}")))?,
        ],
    )
    .map_err(|e| send_err(e.to_string()))?;
    transport.send_raw(&envelope, message).map_err(|e| {
        let auth_refused = e
            .status()
            .is_some_and(|code| matches!(u16::from(code), 530 | 534 | 535 | 538));
        let reason = error_chain(&e);
        if auth_refused {
            MailError::Login {
                server: server.clone(),
                user: submission.user.to_owned(),
                reason,
            }
        } else if e.is_transient() || e.is_permanent() {
            MailError::Send {
                server: server.clone(),
                reason,
            }
        } else {
            MailError::Connect {
                server: server.clone(),
                reason,
            }
        }
    })?;
    Ok(())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
