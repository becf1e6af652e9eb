//! `X-Request-Id`: one id per request, the same at the upstream and in the
//! response, so that the client's logs, the gateway's and the service's can
//! be joined on it.
//!
//! Under the listener's `request_id` setting (see
//! [`sluice_compiler::spec::RequestId`]):
//! - `preserve` keeps the id the client sent when it sent exactly one that
//!   is well formed (see [`is_well_formed`]), and makes a new one otherwise;
//! - `generate` always makes a new one;
//! - `off` leaves the field as the client sent it and adds none.
//!
//! A new id is 128 random bits from the thread's cryptographically seeded
//! generator, written as 32 lowercase hex digits, so ids are unique in
//! practice and cannot be guessed from earlier ones.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use sluice_compiler::spec::RequestId;

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client id kept; longer ones are replaced.
pub(crate) const MAX_LEN: usize = 128;

/// The id a request with `headers` (as the client sent them) carries through
/// the gateway under `mode`, or `None` under `off`.
pub(crate) fn for_request(mode: RequestId, headers: &HeaderMap) -> Option<HeaderValue> {
    match mode {
        RequestId::Off => None,
        RequestId::Generate => Some(generate()),
        RequestId::Preserve => {
            let mut sent = headers.get_all(&X_REQUEST_ID).iter();
            match (sent.next(), sent.next()) {
                (Some(id), None) if is_well_formed(id.as_bytes()) => Some(id.clone()),
                // None, several (which one would be the client's?) or malformed.
                _ => Some(generate()),
            }
        }
    }
}

/// Whether a client's id is kept: 1 to [`MAX_LEN`] visible ASCII characters
/// (no spaces, no controls), which any log line or header can carry as is.
pub(crate) fn is_well_formed(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|b| b.is_ascii_graphic())
}

/// A new id: 128 random bits as 32 lowercase hex digits.
fn generate() -> HeaderValue {
    let bits: u128 = rand::RngExt::random(&mut rand::rng());
    let mut text = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in text.iter_mut().enumerate() {
        let nibble = (bits >> (124 - 4 * i)) & 0xf;
        *byte = HEX[nibble as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(ids: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for id in ids {
            headers.append(X_REQUEST_ID.clone(), HeaderValue::from_bytes(id).unwrap());
        }
        headers
    }

    fn is_generated(id: &HeaderValue) -> bool {
        id.len() == 32 && id.as_bytes().iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    #[test]
    fn preserve_keeps_one_well_formed_id_and_replaces_anything_else() {
        let kept = for_request(RequestId::Preserve, &with(&[b"abc-123_X.y:z"])).unwrap();
        assert_eq!(kept, "abc-123_X.y:z");
        let longest = vec![b'a'; MAX_LEN];
        assert_eq!(for_request(RequestId::Preserve, &with(&[&longest])).unwrap(), &longest[..]);
        let too_long = [b'a'; MAX_LEN + 1];
        for ids in [
            &[][..],
            &[&b""[..]],
            &[&b"has space"[..]],
            &[&b"tab\there"[..]],
            &[&b"caf\xc3\xa9"[..]],
            &[&too_long[..]],
            &[&b"one"[..], &b"two"[..]],
        ] {
            let id = for_request(RequestId::Preserve, &with(ids)).unwrap();
            assert!(is_generated(&id), "{ids:?} kept as {id:?}");
        }
    }

    #[test]
    fn generate_always_makes_a_new_id_and_off_none() {
        let sent = with(&[b"client-id"]);
        let a = for_request(RequestId::Generate, &sent).unwrap();
        let b = for_request(RequestId::Generate, &sent).unwrap();
        assert!(is_generated(&a) && is_generated(&b) && a != b, "{a:?} {b:?}");
        assert_eq!(for_request(RequestId::Off, &sent), None);
    }

    #[test]
    fn generated_ids_do_not_repeat() {
        let ids: std::collections::HashSet<_> =
            (0..10_000).map(|_| for_request(RequestId::Generate, &HeaderMap::new())).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
