//! HTTP methods as a bit set, so a route's method condition is one AND.

use serde::{Deserialize, Serialize};

use crate::spec::MethodName;

/// A request method, reduced to the nine methods of RFC 9110 and "anything else".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Trace,
    Connect,
    /// An extension method: matched only by routes without a method condition.
    Other,
}

impl Method {
    /// Classify a method token as sent on the wire (case-sensitive, as RFC 9110 says).
    pub fn from_bytes(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl From<MethodName> for Method {
    fn from(name: MethodName) -> Method {
        match name {
            MethodName::GET => Method::Get,
            MethodName::HEAD => Method::Head,
            MethodName::POST => Method::Post,
            MethodName::PUT => Method::Put,
            MethodName::DELETE => Method::Delete,
            MethodName::PATCH => Method::Patch,
            MethodName::OPTIONS => Method::Options,
            MethodName::TRACE => Method::Trace,
        }
    }
}

/// The methods a route matches. `ANY` is a route without a method condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MethodSet(u16);

impl MethodSet {
    /// Every method, including extension methods.
    pub const ANY: MethodSet = MethodSet(u16::MAX);

    /// The set of the given methods.
    pub fn of(methods: impl IntoIterator<Item = Method>) -> MethodSet {
        MethodSet(methods.into_iter().fold(0, |bits, m| bits | m.bit()))
    }

    pub fn contains(self, method: Method) -> bool {
        self.0 & method.bit() != 0
    }

    pub fn is_any(self) -> bool {
        self == MethodSet::ANY
    }

    pub fn intersects(self, other: MethodSet) -> bool {
        self.0 & other.0 != 0
    }

    /// The first method of the set, for building an example request.
    pub fn first(self) -> Option<&'static str> {
        self.names().next()
    }

    /// Names of the standard methods in the set, in RFC order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        const NAMES: [(&str, Method); 9] = [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("DELETE", Method::Delete),
            ("PATCH", Method::Patch),
            ("OPTIONS", Method::Options),
            ("TRACE", Method::Trace),
            ("CONNECT", Method::Connect),
        ];
        NAMES.into_iter().filter(move |(_, m)| self.contains(*m)).map(|(n, _)| n)
    }

    /// Methods in both sets.
    pub fn intersection(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 & other.0)
    }

    /// Whether a value read from a plan file is a valid set.
    pub(crate) fn is_well_formed(self) -> bool {
        self.is_any() || (self.0 != 0 && self.0 < (1 << 9))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_match_their_members_only() {
        let set = MethodSet::of([Method::Get, Method::Head]);
        assert!(set.contains(Method::Get));
        assert!(set.contains(Method::Head));
        assert!(!set.contains(Method::Post));
        assert!(!set.contains(Method::Other));
        assert!(MethodSet::ANY.contains(Method::Other));
        assert_eq!(set.names().collect::<Vec<_>>(), ["GET", "HEAD"]);
    }

    #[test]
    fn method_tokens_are_case_sensitive() {
        assert_eq!(Method::from_bytes(b"GET"), Method::Get);
        assert_eq!(Method::from_bytes(b"get"), Method::Other);
    }
}
