//! Reading a request's key: the value that `consistent_hash` places on its
//! ring and that a sticky split pins to a side.
//!
//! `serve` reads it from a real request and `simulate` from a templated one;
//! both go through [`hash_point`] and [`sticky_point`] over a [`KeySource`],
//! so the two read the same part of the request the same way (the first
//! header value, the first cookie or query pair of that name, as sent) and
//! hash it with [`sluice_traffic::key_hash`].

use std::net::IpAddr;

use crate::spec::{HashOn, Sticky};

/// The parts of a request a key is read from.
pub trait KeySource {
    /// The first value of header `name` (lowercase), as sent.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// Call `each` with every value of the `cookie` header until it returns true.
    fn cookie_headers(&self, each: &mut dyn FnMut(&str) -> bool) -> bool;
    /// The raw query string, without the `?`, when the target has one.
    fn query(&self) -> Option<&str>;
    /// Call `found` with the value of the matched route's path parameter
    /// `name`, when the route has one.
    fn path_param(&self, name: &str, found: &mut dyn FnMut(&str));
    /// The client's IP address, when the request has one (a real request
    /// always has).
    fn client(&self) -> Option<IpAddr>;
}

/// The consistent-hash point of a request: the hash of its key, or `None`
/// when the request does not carry the key.
pub fn hash_point(key: &HashOn, request: &dyn KeySource) -> Option<u64> {
    let hash = |bytes: &[u8]| Some(sluice_traffic::key_hash(bytes));
    match key {
        HashOn::Header(name) => hash(request.header(name)?),
        HashOn::Cookie(name) => hash(&cookie(request, name)?),
        HashOn::Query(name) => hash(query(request.query()?, name)?.as_bytes()),
        HashOn::PathParam(name) => {
            let mut point = None;
            request.path_param(name, &mut |value| point = hash(value.as_bytes()));
            point
        }
        HashOn::ClientAddress => hash(request.client()?.to_string().as_bytes()),
    }
}

/// The point of a sticky split: the hash of the request's sticky key, or
/// `None` when the request does not carry it (and is split at random).
pub fn sticky_point(key: &Sticky, request: &dyn KeySource) -> Option<u64> {
    let bytes = match key {
        Sticky::Header(name) => request.header(name)?.to_vec(),
        Sticky::Cookie(name) => cookie(request, name)?,
        Sticky::ClientAddress => request.client()?.to_string().into_bytes(),
    };
    Some(sluice_traffic::key_hash(&bytes))
}

/// The value of the request's cookie `name`, if it sends one.
pub fn cookie(request: &dyn KeySource, name: &str) -> Option<Vec<u8>> {
    let mut found = None;
    request.cookie_headers(&mut |header| {
        found = header.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().as_bytes().to_vec())
        });
        found.is_some()
    });
    found
}

/// The value of the first pair `name=value` of a raw query string, as sent
/// (`name` alone gives an empty value).
fn query<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        header: Option<&'static str>,
        cookies: Vec<&'static str>,
        query: Option<&'static str>,
        param: Option<&'static str>,
    }

    impl KeySource for Fake {
        fn header(&self, name: &str) -> Option<&[u8]> {
            self.header.filter(|_| name == "x-key").map(str::as_bytes)
        }
        fn cookie_headers(&self, each: &mut dyn FnMut(&str) -> bool) -> bool {
            self.cookies.iter().any(|c| each(c))
        }
        fn query(&self) -> Option<&str> {
            self.query
        }
        fn path_param(&self, name: &str, found: &mut dyn FnMut(&str)) {
            if let Some(value) = self.param.filter(|_| name == "id") {
                found(value);
            }
        }
        fn client(&self) -> Option<IpAddr> {
            self.header.map(|_| IpAddr::from([10, 0, 0, 7]))
        }
    }

    const NONE: Fake = Fake { header: None, cookies: Vec::new(), query: None, param: None };

    #[test]
    fn each_key_hashes_the_value_as_sent() {
        let h = |s: &str| Some(sluice_traffic::key_hash(s.as_bytes()));
        let request = Fake {
            header: Some("abc"),
            cookies: vec!["a=1", " other=2; session = s-9 ; session=late"],
            query: Some("x&user=u%201&user=second"),
            param: Some("42"),
        };
        let point = |key: HashOn| hash_point(&key, &request);
        assert_eq!(point(HashOn::Header("x-key".into())), h("abc"));
        assert_eq!(point(HashOn::Cookie("session".into())), h("s-9"));
        assert_eq!(point(HashOn::Query("user".into())), h("u%201"));
        assert_eq!(point(HashOn::Query("x".into())), h(""));
        assert_eq!(point(HashOn::PathParam("id".into())), h("42"));
        assert_eq!(point(HashOn::ClientAddress), h("10.0.0.7"));
        assert_eq!(sticky_point(&Sticky::Cookie("session".into()), &request), h("s-9"));
    }

    #[test]
    fn a_missing_key_gives_no_point() {
        for key in [
            HashOn::Header("x-key".into()),
            HashOn::Cookie("session".into()),
            HashOn::Query("user".into()),
            HashOn::PathParam("id".into()),
        ] {
            assert_eq!(hash_point(&key, &NONE), None, "{key:?}");
        }
        assert_eq!(hash_point(&HashOn::ClientAddress, &NONE), None);
        assert_eq!(sticky_point(&Sticky::Header("x-key".into()), &NONE), None);
    }
}
