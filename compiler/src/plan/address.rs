//! Endpoint addresses: an IP address and port, or a DNS name and port.
//!
//! The compiler only checks that a name is well formed; it never looks one
//! up, so a plan stays the same wherever it is compiled. The runtime
//! resolves names when it loads a plan and again every `resolve_interval`.
//! In a plan file an address is the same text the spec wrote, so plans with
//! IP endpoints read as they did before names were allowed.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where an endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointAddress {
    /// `IP:PORT`, used as it is.
    Ip(SocketAddr),
    /// `HOST:PORT`, resolved by the runtime; each address the name resolves
    /// to serves as an endpoint of its own.
    Name { host: String, port: u16 },
}

/// Why a text is not an endpoint address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("it has no port")]
    MissingPort,
    #[error("its port is not a number from 1 to 65535")]
    BadPort,
    #[error("it has port 0")]
    PortZero,
    #[error("its host is neither an IP address nor a DNS name")]
    BadHost,
}

/// The longest DNS name, without a trailing dot.
const MAX_NAME: usize = 253;
/// The longest label of a DNS name.
const MAX_LABEL: usize = 63;

impl EndpointAddress {
    /// Read `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`.
    pub fn parse(text: &str) -> Result<EndpointAddress, AddressError> {
        if let Ok(address) = text.parse::<SocketAddr>() {
            return match address.port() {
                0 => Err(AddressError::PortZero),
                _ => Ok(EndpointAddress::Ip(address)),
            };
        }
        if text.parse::<std::net::IpAddr>().is_ok() {
            return Err(AddressError::MissingPort);
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(AddressError::MissingPort);
        };
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            // `::1` or `[::1]` without a port lands here too.
            return Err(if host.contains(':') || host.starts_with('[') {
                AddressError::MissingPort
            } else {
                AddressError::BadPort
            });
        }
        let port: u16 = port.parse().map_err(|_| AddressError::BadPort)?;
        if host.parse::<std::net::IpAddr>().is_err() && !is_dns_name(host) {
            return Err(AddressError::BadHost);
        }
        if port == 0 {
            return Err(AddressError::PortZero);
        }
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(EndpointAddress::Ip(SocketAddr::new(ip, port))),
            Err(_) => Ok(EndpointAddress::Name { host: host.to_owned(), port }),
        }
    }

    /// The socket address, when this is an IP address rather than a name.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            EndpointAddress::Ip(address) => Some(*address),
            EndpointAddress::Name { .. } => None,
        }
    }
}

/// Whether `host` is a DNS name: dot-separated labels of letters, digits,
/// `-` and `_`, none empty or longer than 63 bytes or starting or ending
/// with `-`, at most 253 bytes in all (one trailing dot allowed), and a last
/// label that is not all digits (so `300.1.1.1` is a bad IP, not a name).
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_NAME {
        return false;
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_LABEL
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let last = host.rsplit('.').next().unwrap_or(host);
    host.split('.').all(label_ok) && !last.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointAddress::Ip(address) => address.fmt(f),
            EndpointAddress::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<SocketAddr> for EndpointAddress {
    fn from(address: SocketAddr) -> Self {
        EndpointAddress::Ip(address)
    }
}

impl Serialize for EndpointAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EndpointAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        EndpointAddress::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("endpoint address `{text}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ips_and_names_and_refuses_the_rest() {
        let ip = |t: &str| EndpointAddress::Ip(t.parse().unwrap());
        let name = |h: &str, port| EndpointAddress::Name { host: h.into(), port };
        let cases: &[(&str, Result<EndpointAddress, AddressError>)] = &[
            ("127.0.0.1:9101", Ok(ip("127.0.0.1:9101"))),
            ("[::1]:80", Ok(ip("[::1]:80"))),
            ("orders.internal:8080", Ok(name("orders.internal", 8080))),
            ("localhost:1", Ok(name("localhost", 1))),
            ("svc_a.ns.local.:443", Ok(name("svc_a.ns.local.", 443))),
            ("orders.internal", Err(AddressError::MissingPort)),
            ("127.0.0.1", Err(AddressError::MissingPort)),
            ("::1", Err(AddressError::MissingPort)),
            ("orders:", Err(AddressError::BadPort)),
            ("orders:http", Err(AddressError::BadPort)),
            ("orders:65536", Err(AddressError::BadPort)),
            ("orders:0", Err(AddressError::PortZero)),
            ("127.0.0.1:0", Err(AddressError::PortZero)),
            ("300.1.1.1:80", Err(AddressError::BadHost)),
            ("-bad.example:80", Err(AddressError::BadHost)),
            ("a..b:80", Err(AddressError::BadHost)),
            ("http://orders:80", Err(AddressError::BadHost)),
            ("or ders:80", Err(AddressError::BadHost)),
            (":80", Err(AddressError::BadHost)),
        ];
        for (text, expected) in cases {
            assert_eq!(&EndpointAddress::parse(text), expected, "{text}");
        }
        let long = format!("{}:80", "a".repeat(64));
        assert_eq!(EndpointAddress::parse(&long), Err(AddressError::BadHost));
    }

    #[test]
    fn round_trips_through_its_text() {
        for text in ["127.0.0.1:9101", "[::1]:80", "orders.internal:8080"] {
            let address = EndpointAddress::parse(text).unwrap();
            assert_eq!(address.to_string(), text);
            let json = serde_json::to_string(&address).unwrap();
            assert_eq!(serde_json::from_str::<EndpointAddress>(&json).unwrap(), address);
        }
    }
}
