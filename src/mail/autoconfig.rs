//! Mail settings from an autoconfig document, the XML format Thunderbird reads
//! (`config-v1.1.xml`): where it is looked for, how it is fetched (HTTPS only, size and time
//! bounded), and what is taken from it (`incomingServer type="imap"` and `outgoingServer
//! type="smtp"`: host name, port, socket type, login name). Parsing is pure and never panics on
//! bad input; fetching is IO.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quick_xml::events::{BytesStart, Event};

use super::candidates::{Candidate, Source};
use super::{Security, Server};

/// Documents larger than this are not autoconfig documents.
pub const MAX_BYTES: u64 = 64 * 1024;
/// One fetch (connection, redirects and body) gives up after this long.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many servers of each kind are taken from one document.
const MAX_SERVERS: usize = 8;
/// At most this many XML elements are read.
const MAX_ELEMENTS: usize = 4096;

/// The URLs to fetch for `email` at `domain`, in order: the one configured (`autoconfig-url`),
/// else the domain's own two places over HTTPS. The address goes along as `emailaddress`, as
/// Thunderbird sends it.
pub fn urls(configured: Option<&str>, email: &str, domain: &str) -> Vec<(String, bool)> {
    let address = percent_encode(email);
    match configured {
        Some(url) => {
            let join = if url.contains('?') { '&' } else { '?' };
            vec![(format!("{url}{join}emailaddress={address}"), true)]
        }
        None => vec![
            (
                format!("https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={address}"),
                false,
            ),
            (
                format!("https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml"),
                false,
            ),
        ],
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One server of the document, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RawServer {
    /// `incomingServer` (else `outgoingServer`).
    incoming: bool,
    kind: String,
    hostname: String,
    port: String,
    socket_type: String,
    username: String,
    authentication: Vec<String>,
}

/// The candidates of `xml` (fetched from `url`) for `email`: its IMAP servers and its SMTP
/// servers, in the document's order. Servers without TLS, with a bad host name or port, or that
/// take no password are left out; so is a server whose host or login name holds a placeholder
/// other than `%EMAILADDRESS%`, `%EMAILLOCALPART%` and `%EMAILDOMAIN%`. Malformed XML gives what
/// was read before the fault.
pub fn parse(
    xml: &str,
    email: &str,
    url: &str,
    configured: bool,
) -> (Vec<Candidate>, Vec<Candidate>) {
    let mut imap = Vec::new();
    let mut smtp = Vec::new();
    for raw in read_servers(xml) {
        let list = match (raw.kind.as_str(), raw.incoming) {
            ("imap", true) => &mut imap,
            ("smtp", false) => &mut smtp,
            _ => continue,
        };
        if list.len() >= MAX_SERVERS {
            continue;
        }
        if let Some(candidate) = candidate(&raw, email, url, configured) {
            list.push(candidate);
        }
    }
    (imap, smtp)
}

fn candidate(raw: &RawServer, email: &str, url: &str, configured: bool) -> Option<Candidate> {
    let security = match raw.socket_type.to_ascii_uppercase().as_str() {
        "SSL" | "TLS" => Security::Tls,
        "STARTTLS" => Security::StartTls,
        _ => return None,
    };
    // Providers serving many domains write `mail.%EMAILDOMAIN%`.
    let host = fill_placeholders(raw.hostname.trim(), email)?;
    let host = host.as_str();
    if !valid_host(host) {
        return None;
    }
    let port: u16 = raw.port.trim().parse().ok().filter(|p| *p != 0)?;
    let methods: Vec<&str> = raw.authentication.iter().map(|a| a.trim()).collect();
    let takes_password = methods.is_empty()
        || methods.iter().any(|m| {
            [
                "password-cleartext",
                "plain",
                "password-encrypted",
                "secure",
            ]
            .iter()
            .any(|p| m.eq_ignore_ascii_case(p))
        });
    if !takes_password {
        return None;
    }
    let user = match raw.username.trim() {
        "" => None,
        name => Some(fill_placeholders(name, email)?),
    };
    Some(Candidate {
        server: Server {
            host: host.trim_end_matches('.').to_owned(),
            port,
        },
        security,
        user,
        source: Source::Autoconfig {
            url: url.to_owned(),
            configured,
        },
    })
}

/// A host name (letters, digits, `-`, `.`; at most 253 characters) or an IP address.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host
                .split('.')
                .filter(|label| !label.is_empty())
                .all(|label| {
                    label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
                && !host.starts_with('.'))
}

/// `name` with the placeholders filled in; None when it holds another one (or a control
/// character).
pub fn fill_placeholders(name: &str, email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    let filled = name
        .replace("%EMAILADDRESS%", email)
        .replace("%EMAILLOCALPART%", local)
        .replace("%EMAILDOMAIN%", domain);
    (!filled.contains('%') && !filled.chars().any(char::is_control) && filled.len() <= 320)
        .then_some(filled)
}

/// The servers of the document, as written, at most [`MAX_ELEMENTS`] elements read.
fn read_servers(xml: &str) -> Vec<RawServer> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut servers = Vec::new();
    let mut current: Option<RawServer> = None;
    let mut field: Option<String> = None;
    let mut text = String::new();
    let mut elements = 0;
    // A syntax error ends the reading: what was read before it stands.
    while let Ok(event) = reader.read_event() {
        match event {
            Event::Eof => break,
            Event::Start(start) if current.is_none() => {
                elements += 1;
                let name = local_name(&start);
                if name == "incomingServer" || name == "outgoingServer" {
                    current = Some(RawServer {
                        incoming: name == "incomingServer",
                        kind: attribute(&start, "type").unwrap_or_default(),
                        ..RawServer::default()
                    });
                }
            }
            Event::Start(start) => {
                elements += 1;
                field = Some(local_name(&start));
                text.clear();
            }
            Event::Text(t) if field.is_some() && text.len() < 1024 => {
                text.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if field.is_some() && text.len() < 1024 => {
                text.extend(entity(&r.into_inner()));
            }
            Event::End(end) => {
                let name = end.local_name().as_ref().to_owned();
                if name == "incomingServer" || name == "outgoingServer" {
                    servers.extend(current.take());
                } else if let (Some(server), Some(open)) = (current.as_mut(), field.take()) {
                    let value = std::mem::take(&mut text);
                    match open.as_str() {
                        "hostname" => server.hostname = value,
                        "port" => server.port = value,
                        "socketType" => server.socket_type = value,
                        "username" => server.username = value,
                        "authentication" if server.authentication.len() < 16 => {
                            server.authentication.push(value);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if elements > MAX_ELEMENTS || servers.len() > 4 * MAX_SERVERS {
            break;
        }
    }
    servers
}

/// A predefined entity or character reference, by name (`amp`, `#64`, `#x40`).
fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

fn local_name(start: &BytesStart<'_>) -> String {
    start.local_name().as_ref().to_owned()
}

fn attribute(start: &BytesStart<'_>, name: &str) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.trim().to_ascii_lowercase())
        })
}

/// Fetches `url` over HTTPS (redirects only to HTTPS, at most 3), at most [`MAX_BYTES`] within
/// [`FETCH_TIMEOUT`]; the host's addresses come from `dns_server` when given. The body as text.
pub fn fetch(
    url: &str,
    tls: Arc<rustls::ClientConfig>,
    dns_server: Option<SocketAddr>,
) -> Result<String, String> {
    if !url.starts_with("https://") {
        return Err("not an https:// URL".to_owned());
    }
    let mut builder = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .user_agent(concat!("smime-acme/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(FETCH_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::limited(3));
    if let Some(host) = host_of(url)
        && dns_server.is_some()
    {
        let server = Server::parse(&host, 443).map_err(|e| e.to_string())?;
        let addresses = super::resolve::addresses(&server, dns_server)
            .map_err(|e| format!("cannot resolve {}: {e}", server.host))?;
        builder = builder.resolve_to_addrs(&server.host, &addresses);
    }
    let client = builder.build().map_err(|e| super::error_chain(&e))?;
    let response = client.get(url).send().map_err(|e| super::error_chain(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    if response.content_length().is_some_and(|n| n > MAX_BYTES) {
        return Err(format!("larger than {MAX_BYTES} bytes"));
    }
    let mut body = Vec::new();
    response
        .take(MAX_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    if body.len() as u64 > MAX_BYTES {
        return Err(format!("larger than {MAX_BYTES} bytes"));
    }
    String::from_utf8(body).map_err(|_| "not UTF-8 text".to_owned())
}

/// The `host[:port]` of an https:// URL.
fn host_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!authority.is_empty()).then(|| authority.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.com">
    <domain>example.com</domain>
    <displayName>Example &amp; Co</displayName>
    <incomingServer type="pop3">
      <hostname>pop.example.com</hostname><port>995</port><socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.com</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.com</hostname>
      <port>143</port>
      <socketType>plain</socketType>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>oauth.example.com</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <authentication>OAuth2</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.com</hostname>
      <port>587</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILADDRESS%</username>
      <authentication>OAuth2</authentication>
      <authentication>password-cleartext</authentication>
    </outgoingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.com</hostname>
      <port>99999</port>
      <socketType>SSL</socketType>
    </outgoingServer>
  </emailProvider>
</clientConfig>"#;

    #[test]
    fn imap_and_smtp_servers_are_read_with_their_login_names() {
        let url = "https://autoconfig.example.com/mail/config-v1.1.xml";
        let (imap, smtp) = parse(DOC, "jo@example.com", url, false);
        assert_eq!(imap.len(), 1, "{imap:?}");
        assert_eq!(imap[0].server.to_string(), "imap.example.com:993");
        assert_eq!(imap[0].security, Security::Tls);
        assert_eq!(imap[0].user.as_deref(), Some("jo"));
        assert_eq!(
            imap[0].source,
            Source::Autoconfig {
                url: url.into(),
                configured: false
            }
        );
        assert_eq!(smtp.len(), 1, "{smtp:?}");
        assert_eq!(smtp[0].server.to_string(), "smtp.example.com:587");
        assert_eq!(smtp[0].security, Security::StartTls);
        assert_eq!(smtp[0].user.as_deref(), Some("jo@example.com"));
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            fill_placeholders("%EMAILLOCALPART%+x@%EMAILDOMAIN%", "jo@example.com").as_deref(),
            Some("jo+x@example.com")
        );
        assert_eq!(fill_placeholders("%REALNAME%", "jo@example.com"), None);
        assert_eq!(fill_placeholders("a\nb", "jo@example.com"), None);
        assert_eq!(fill_placeholders("x", "not-an-address"), None);
    }

    #[test]
    fn bad_documents_give_what_was_read_and_never_panic() {
        for bad in [
            "",
            "<",
            "not xml at all",
            "<clientConfig><emailProvider><incomingServer type=\"imap\"><hostname>",
            "<incomingServer type=\"imap\"><hostname>a b</hostname><port>993</port><socketType>SSL</socketType></incomingServer>",
            "<incomingServer type=\"imap\"><hostname>x.test</hostname><port>-1</port><socketType>SSL</socketType></incomingServer>",
            "<incomingServer type=\"imap\"><hostname>%REALNAME%</hostname><port>993</port><socketType>SSL</socketType></incomingServer>",
            "<incomingServer type='imap'><hostname>&bogus;</hostname></incomingServer>",
            "<a><b></a></b>",
        ] {
            let (imap, smtp) = parse(bad, "jo@example.com", "https://x.test/", true);
            assert!(imap.is_empty() && smtp.is_empty(), "{bad:?}: {imap:?}");
        }
        // Placeholders in host names.
        let doc = "<incomingServer type=\"imap\"><hostname>imap.%EMAILDOMAIN%</hostname>\
                   <port>993</port><socketType>SSL</socketType></incomingServer>";
        let (imap, _) = parse(doc, "jo@example.com", "https://x.test/", true);
        assert_eq!(imap[0].server.host, "imap.example.com");
        // Entities and character references in values.
        let doc = "<incomingServer type=\"IMAP\"><hostname>imap&#46;example&#x2E;com</hostname>\
                   <port>993</port><socketType>SSL</socketType></incomingServer>";
        let (imap, _) = parse(doc, "jo@example.com", "https://x.test/", true);
        assert_eq!(imap[0].server.host, "imap.example.com");
        // A servers' flood is cut short.
        let one = "<incomingServer type=\"imap\"><hostname>h.test</hostname><port>993</port>\
                   <socketType>SSL</socketType></incomingServer>";
        let (imap, _) = parse(&one.repeat(1000), "jo@example.com", "https://x.test/", true);
        assert_eq!(imap.len(), MAX_SERVERS);
        // Deep nesting.
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert!(
            parse(&deep, "jo@example.com", "https://x.test/", true)
                .0
                .is_empty()
        );
    }

    #[test]
    fn the_urls_looked_at() {
        let urls = urls(None, "jo+x@example.com", "example.com");
        assert_eq!(
            urls[0].0,
            "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=jo%2Bx%40example.com"
        );
        assert_eq!(
            urls[1].0,
            "https://example.com/.well-known/autoconfig/mail/config-v1.1.xml"
        );
        assert!(urls.iter().all(|(_, configured)| !configured));
        assert_eq!(
            super::urls(
                Some("https://h.test/c.xml?a=1"),
                "jo@example.com",
                "example.com"
            ),
            [(
                "https://h.test/c.xml?a=1&emailaddress=jo%40example.com".to_owned(),
                true
            )]
        );
        assert_eq!(
            host_of("https://localhost:8443/x?y").as_deref(),
            Some("localhost:8443")
        );
        assert_eq!(host_of("http://x/"), None);
    }
}
