//! Name lookups for the mail servers: SRV records (RFC 2782) for discovery, and the addresses of
//! a mail server's host name. Asked of `--dns-server` when one is given (host addresses it does
//! not know are then asked of the system's resolver, so that `localhost` and names outside its
//! zones still work), else of the system's resolvers. IO: DNS, every lookup bounded by
//! [`LOOKUP_TIMEOUT`].

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::hickory_resolver::system_conf::read_system_conf;

use super::Server;

/// One DNS lookup (all name servers together) gives up after this long, and is not retried.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// At most this many records of one SRV answer are looked at.
const MAX_SRV_RECORDS: usize = 16;

/// One SRV record (RFC 2782). A target of "." (the service is not offered) is an empty string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// The resolver configuration: `dns_server` alone, or the system's.
pub fn config(dns_server: Option<SocketAddr>) -> Result<(ResolverConfig, ResolverOpts), String> {
    match dns_server {
        Some(addr) => {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            Ok((
                ResolverConfig::from_name_servers(vec![server]),
                ResolverOpts::default(),
            ))
        }
        None => read_system_conf().map_err(|e| e.to_string()),
    }
}

/// A DNS client: the given server or the system's resolvers.
pub struct Dns {
    authenticator: MessageAuthenticator,
    runtime: tokio::runtime::Runtime,
    /// Whether a server was given (host addresses it lacks are then asked of the system).
    given: bool,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("given", &self.given)
            .finish_non_exhaustive()
    }
}

impl Dns {
    /// A client asking `dns_server`, or the system's resolvers when None.
    pub fn new(dns_server: Option<SocketAddr>) -> Result<Dns, String> {
        let (config, mut options) = config(dns_server)?;
        options.timeout = LOOKUP_TIMEOUT;
        options.attempts = 0;
        let authenticator =
            MessageAuthenticator::new(config, options).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Dns {
            authenticator,
            runtime,
            given: dns_server.is_some(),
        })
    }

    fn resolver(&self) -> &TokioResolver {
        self.authenticator.resolver()
    }

    /// The SRV records at `name` (e.g. `_imaps._tcp.example.com`), as given; none when the name
    /// has none. An error says why the answer is not known (a timeout, a server failure).
    pub fn srv(&self, name: &str) -> Result<Vec<SrvRecord>, String> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let lookup = self.runtime.block_on(async {
            tokio::time::timeout(
                LOOKUP_TIMEOUT + Duration::from_millis(500),
                self.resolver().srv_lookup(fqdn.as_str()),
            )
            .await
        });
        let lookup = match lookup {
            Err(_) => return Err("DNS lookup timed out".to_owned()),
            Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => return Ok(Vec::new()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(lookup)) => lookup,
        };
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(SrvRecord {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: srv.target.to_ascii().trim_end_matches('.').to_owned(),
                }),
                _ => None,
            })
            .take(MAX_SRV_RECORDS)
            .collect())
    }

    /// The addresses of `host`: an IP address is its own; a name is asked of the DNS server,
    /// and of the system's resolver when a given server knows none.
    pub fn addresses(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let found = self.runtime.block_on(async {
            tokio::time::timeout(
                LOOKUP_TIMEOUT + Duration::from_millis(500),
                self.resolver().lookup_ip(fqdn.as_str()),
            )
            .await
        });
        let ips: Vec<SocketAddr> = match found {
            Ok(Ok(lookup)) => lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
            Ok(Err(_)) | Err(_) => Vec::new(),
        };
        if !ips.is_empty() {
            return Ok(ips);
        }
        if self.given {
            return system(host, port);
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ))
    }
}

fn system(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// The addresses of `server`: through `dns_server` when given (then the system's resolver for
/// names it does not know), else through the system's resolver.
pub fn addresses(
    server: &Server,
    dns_server: Option<SocketAddr>,
) -> std::io::Result<Vec<SocketAddr>> {
    match dns_server {
        None => system(&server.host, server.port),
        Some(_) if server.host.parse::<IpAddr>().is_ok() => system(&server.host, server.port),
        Some(addr) => Dns::new(Some(addr))
            .map_err(std::io::Error::other)?
            .addresses(&server.host, server.port),
    }
}
