//! Templated requests: the values a share of the traffic carries (headers,
//! cookies, query and path parameters, the client address), each fixed or
//! drawn from a key distribution.
//!
//! Keys matter to the policies that read them: a `consistent_hash` pool
//! places a request on its ring by the hash of its key, and a sticky split
//! pins it to a side. The simulator reads the key of a templated request
//! through the same [`sluice_compiler::plan::key`] functions as `serve`, so
//! a simulated key lands on the endpoint the production gateway would pick.
//!
//! Key draws are keyed by `(seed, request id, value)` rather than taken
//! from a stream (see [`crate::random::keyed_uniform`]): every variant gives
//! the n-th request the same keys however it interleaves its other draws,
//! which keeps the comparison of variants one of common random numbers. A
//! Zipf law is drawn by inversion of its cumulative table, so one uniform
//! gives one rank, rank 1 the most frequent.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use sluice_compiler::condition::RequestFields;
use sluice_compiler::plan::key::KeySource;

use crate::random::keyed_uniform;

/// Salt of the key draws; a template's value `i` uses `KEY_SALT + i`.
const KEY_SALT: u64 = 6 << 40;

/// The first address of drawn client addresses: key `k` is `10.0.0.0 + k`.
const CLIENT_BASE: u32 = 0x0a00_0000;

/// The values every request of a traffic share carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Template {
    /// Each value, fixed or drawn, by index.
    pub values: Vec<Value>,
    /// Header names (lowercase) and the index of their value.
    pub headers: Vec<(String, usize)>,
    pub cookies: Vec<(String, usize)>,
    pub query: Vec<(String, usize)>,
    /// The route's path parameters, each as literal text and values.
    pub params: Vec<(String, Vec<Piece>)>,
    /// The value of the client address, when the template sets one.
    pub client: Option<usize>,
}

/// Part of a path parameter's text.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Literal(String),
    /// The template's value of this index.
    Value(usize),
}

/// One value of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// The same text on every request.
    Fixed(String),
    /// A key drawn per request.
    Keys(Keys),
}

/// A key distribution and how a key is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    pub law: KeyLaw,
    /// Text before the key's number, such as `user-`.
    pub prefix: String,
    /// Keys are client addresses: key `k` is `10.0.0.0 + k`, not text.
    pub address: bool,
}

/// Which key, numbered from 1, a request draws.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyLaw {
    /// Each of `keys` keys equally likely.
    Uniform { keys: u64 },
    /// Key `k` with probability proportional to `k^-s`: the cumulative
    /// probabilities of keys 1, 2, ..., the last one 1.
    Zipf { cumulative: Arc<[f64]> },
}

impl KeyLaw {
    /// The Zipf law over `keys` keys with exponent `s` (`keys >= 1`, `s > 0`).
    pub fn zipf(keys: u64, s: f64) -> KeyLaw {
        let weights = (1..=keys).map(|k| (k as f64).powf(-s));
        let mut sum = 0.0;
        let mut cumulative: Vec<f64> = weights
            .map(|w| {
                sum += w;
                sum
            })
            .collect();
        for c in &mut cumulative {
            *c /= sum;
        }
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        KeyLaw::Zipf { cumulative: cumulative.into() }
    }

    /// Number of keys.
    pub fn keys(&self) -> u64 {
        match self {
            KeyLaw::Uniform { keys } => *keys,
            KeyLaw::Zipf { cumulative } => cumulative.len() as u64,
        }
    }

    /// The key at quantile `u` (`0 < u < 1`), from 1.
    pub fn key(&self, u: f64) -> u64 {
        match self {
            KeyLaw::Uniform { keys } => ((u * *keys as f64) as u64).min(keys.saturating_sub(1)) + 1,
            KeyLaw::Zipf { cumulative } => {
                let i = cumulative.partition_point(|&c| c <= u);
                i.min(cumulative.len().saturating_sub(1)) as u64 + 1
            }
        }
    }

    /// The probability of key `k` (from 1).
    pub fn probability(&self, k: u64) -> f64 {
        match self {
            KeyLaw::Uniform { keys } if (1..=*keys).contains(&k) => 1.0 / *keys as f64,
            KeyLaw::Uniform { .. } => 0.0,
            KeyLaw::Zipf { cumulative } => {
                let Some(i) = k.checked_sub(1).map(|i| i as usize) else { return 0.0 };
                let below =
                    if i == 0 { 0.0 } else { cumulative.get(i - 1).copied().unwrap_or(1.0) };
                cumulative.get(i).map_or(0.0, |c| c - below)
            }
        }
    }
}

impl Keys {
    /// How key `k` is written.
    pub fn text(&self, k: u64) -> String {
        if self.address {
            address(k).to_string()
        } else {
            format!("{}{k}", self.prefix)
        }
    }
}

/// The client address that stands for key `k`.
pub fn address(k: u64) -> Ipv4Addr {
    Ipv4Addr::from(CLIENT_BASE.wrapping_add(k as u32))
}

impl Template {
    /// The key request `id` draws for value `value`, or `None` for a fixed value.
    pub fn key(&self, seed: u64, id: u64, value: usize) -> Option<u64> {
        match self.values.get(value)? {
            Value::Fixed(_) => None,
            Value::Keys(keys) => {
                Some(keys.law.key(keyed_uniform(seed, id, KEY_SALT + value as u64)))
            }
        }
    }

    /// The values of request `id` of a run seeded with `seed`.
    pub fn draw(&self, seed: u64, id: u64) -> Drawn<'_> {
        self.values_with(|i, keys| {
            keys.text(keys.law.key(keyed_uniform(seed, id, KEY_SALT + i as u64)))
        })
    }

    /// The values with every key at key 1, the most frequent: what `check`
    /// routes a template's path with.
    pub fn sample(&self) -> Drawn<'_> {
        self.values_with(|_, keys| keys.text(1))
    }

    fn values_with(&self, mut key: impl FnMut(usize, &Keys) -> String) -> Drawn<'_> {
        let values: Vec<String> = (self.values.iter().enumerate())
            .map(|(i, v)| match v {
                Value::Fixed(text) => text.clone(),
                Value::Keys(keys) => key(i, keys),
            })
            .collect();
        let pairs = |list: &[(String, usize)], between: &str| {
            let pairs: Vec<String> =
                list.iter().map(|(n, i)| format!("{n}={}", values[*i])).collect();
            pairs.join(between)
        };
        let cookie = pairs(&self.cookies, "; ");
        let query = pairs(&self.query, "&");
        Drawn { template: self, values, cookie, query }
    }
}

/// One request's values, as the key reader and route conditions see them.
#[derive(Debug)]
pub struct Drawn<'t> {
    template: &'t Template,
    values: Vec<String>,
    /// The `cookie` header and the query string the values make.
    cookie: String,
    query: String,
}

impl Drawn<'_> {
    fn value(&self, i: usize) -> &str {
        self.values.get(i).map_or("", String::as_str)
    }

    /// The text of path parameter `name`, when the template sets it.
    pub fn param(&self, name: &str) -> Option<String> {
        let (_, pieces) = self.template.params.iter().find(|(n, _)| n == name)?;
        let text = pieces.iter().map(|p| match p {
            Piece::Literal(text) => text.as_str(),
            Piece::Value(i) => self.value(*i),
        });
        Some(text.collect())
    }

    /// Value `i` as written.
    pub fn text(&self, i: usize) -> &str {
        self.value(i)
    }
}

impl KeySource for Drawn<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        let (_, i) = self.template.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        Some(self.value(*i).as_bytes())
    }

    fn cookie_headers(&self, each: &mut dyn FnMut(&str) -> bool) -> bool {
        !self.template.cookies.is_empty() && each(&self.cookie)
    }

    fn query(&self) -> Option<&str> {
        (!self.template.query.is_empty()).then_some(self.query.as_str())
    }

    fn path_param(&self, name: &str, found: &mut dyn FnMut(&str)) {
        if let Some(text) = self.param(name) {
            found(&text);
        }
    }

    fn client(&self) -> Option<IpAddr> {
        // `check` made sure that a client value is an address.
        self.value(self.template.client?).parse().ok()
    }
}

impl RequestFields for Drawn<'_> {
    fn any_header(&self, name: &str, each: &mut dyn FnMut(&str) -> bool) -> bool {
        if name == "cookie" {
            return self.cookie_headers(each);
        }
        let mut values = self.template.headers.iter().filter(|(n, _)| n == name);
        values.any(|(_, i)| each(self.value(*i)))
    }

    fn query(&self) -> &str {
        &self.query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_keys_follow_their_law() {
        let law = KeyLaw::zipf(100, 1.2);
        let total: f64 = (1..=100).map(|k| law.probability(k)).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        let want_1 = 1.0 / (1..=100).map(|k| (k as f64).powf(-1.2)).sum::<f64>();
        assert!((law.probability(1) - want_1).abs() < 1e-12);
        let n = 200_000u64;
        let ones = (0..n).filter(|&i| law.key(keyed_uniform(3, i, 0)) == 1).count();
        let share = ones as f64 / n as f64;
        assert!((share - want_1).abs() < 0.005, "key 1 drawn {share}, law says {want_1}");
        assert_eq!(law.key(1e-12), 1);
        assert_eq!(law.key(1.0 - 1e-12), 100);
    }

    #[test]
    fn uniform_keys_cover_every_key() {
        let law = KeyLaw::Uniform { keys: 4 };
        let keys: Vec<u64> = [0.01, 0.3, 0.6, 0.99].iter().map(|&u| law.key(u)).collect();
        assert_eq!(keys, [1, 2, 3, 4]);
        assert_eq!(law.probability(5), 0.0);
    }

    #[test]
    fn drawn_values_make_the_request_the_key_reader_sees() {
        let keys = Keys { law: KeyLaw::Uniform { keys: 10 }, prefix: "u-".into(), address: false };
        let t = Template {
            values: vec![Value::Keys(keys.clone()), Value::Fixed("x".into())],
            headers: vec![("x-user".into(), 0)],
            cookies: vec![("a".into(), 1), ("s".into(), 0)],
            query: vec![("q".into(), 1)],
            params: vec![("id".into(), vec![Piece::Literal("n".into()), Piece::Value(0)])],
            client: None,
        };
        let d = t.draw(7, 3);
        let key = t.key(7, 3, 0).unwrap();
        assert_eq!(d.header("x-user"), Some(format!("u-{key}").as_bytes()));
        assert_eq!(d.param("id"), Some(format!("nu-{key}")));
        assert_eq!(KeySource::query(&d), Some("q=x"));
        assert_eq!(d.cookie, format!("a=x; s=u-{key}"));
        assert_eq!(d.client(), None);
        assert_eq!(t.draw(7, 3).text(0), d.text(0), "the same request draws the same key");
    }
}
