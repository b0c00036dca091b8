//! DKIM verification of challenge mails (mail-auth), with keys from the system's resolver or a
//! given DNS server. IO: DNS. The verdict over the results is `challenge::authenticity`.

use std::net::SocketAddr;

use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};

use crate::challenge::authenticity::DkimCheck;

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot set up DNS for DKIM: {0}")]
    Resolver(String),
}

/// Verifies DKIM signatures.
pub struct Verifier {
    authenticator: MessageAuthenticator,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier asking `dns_server`, or the system's resolvers when None.
    pub fn new(dns_server: Option<SocketAddr>) -> Result<Verifier, DkimError> {
        let err = |e: &dyn std::fmt::Display| DkimError::Resolver(e.to_string());
        let authenticator = match dns_server {
            Some(addr) => {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                MessageAuthenticator::new(
                    ResolverConfig::from_name_servers(vec![server]),
                    ResolverOpts::default(),
                )
            }
            None => MessageAuthenticator::new_system_conf(),
        }
        .map_err(|e| err(&e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(&e))?;
        Ok(Verifier {
            authenticator,
            runtime,
        })
    }

    /// One check per DKIM-Signature header of `raw`.
    pub fn verify(&self, raw: &[u8]) -> Vec<DkimCheck> {
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            return Vec::new();
        };
        let outputs = self
            .runtime
            .block_on(self.authenticator.verify_dkim(&message));
        outputs
            .iter()
            .map(|output| {
                let signature = output.signature();
                let result = output.result();
                DkimCheck {
                    pass: matches!(result, DkimResult::Pass),
                    domain: signature
                        .map(|s| s.d.to_ascii_lowercase())
                        .unwrap_or_default(),
                    algorithm: signature.map(|s| format!("{:?}", s.a)).unwrap_or_default(),
                    signed_headers: signature
                        .map(|s| s.h.iter().map(|h| h.to_ascii_lowercase()).collect())
                        .unwrap_or_default(),
                    detail: format!("{result:?}"),
                    temporary: matches!(result, DkimResult::TempError(_)),
                }
            })
            .collect()
    }
}
