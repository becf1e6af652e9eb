//! The route trie: host, then path segment, then method and listener.
//!
//! Lookup walks the trie depth first in precedence order and backtracks when
//! a branch yields no route for the request's listener and method, so the
//! first route found is the best one under the rules in the README:
//!
//! 1. only routes that serve the request's listener are candidates;
//! 2. an exact host beats a wildcard host, a longer wildcard suffix beats a
//!    shorter one, and any wildcard beats a route with no host;
//! 3. segment by segment from the left, a literal beats a `{param}`, which
//!    beats a `{*catch_all}`; a template that ends where the path ends beats
//!    a catch-all that matches the empty remainder;
//! 4. at the same path, a route with a method condition beats one without.
//!
//! Routes still tied after these rules are ambiguous; `RouterBuilder::insert`
//! refuses the second one, so a compiled plan never holds a tie.
//!
//! Lookup allocates nothing: children are sorted vectors searched in place,
//! hosts are compared without lowercasing copies, and captures are byte
//! ranges written into a buffer the caller reuses.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::condition::{Condition, NoFields, Pattern, RequestFields};
use crate::method::{Method, MethodSet};
use crate::template::{Segment, Template};

/// Index of a route in the plan.
pub type RouteId = u32;

/// Byte ranges of a request path captured by a route's parameters, in the
/// order of the route's parameter names. Reuse one per connection or task.
#[derive(Debug, Default, Clone)]
pub struct Captures {
    ranges: Vec<(u32, u32)>,
}

impl Captures {
    pub fn new() -> Captures {
        Captures { ranges: Vec::with_capacity(8) }
    }

    /// The captured byte ranges of the last successful lookup.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }
}

/// What a route asks of the host header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HostPattern {
    Any,
    /// A lowercase host without a trailing dot.
    Exact(String),
    /// A lowercase suffix that starts with a dot, from `*.example.test`.
    Wildcard(String),
}

impl HostPattern {
    /// Parse a host as written in a spec. A port (`api.example.test:8443`) is
    /// not part of the pattern: it becomes a condition of the route.
    pub fn parse(text: Option<&str>) -> HostPattern {
        let Some(text) = text else { return HostPattern::Any };
        let text = split_host_port(text).0;
        let host = text.trim_end_matches('.').to_ascii_lowercase();
        match host.strip_prefix('*') {
            Some(suffix) => HostPattern::Wildcard(suffix.to_owned()),
            None => HostPattern::Exact(host),
        }
    }

    /// A host this pattern matches, for example requests.
    pub fn example(&self) -> String {
        match self {
            HostPattern::Any => "example.test".to_owned(),
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Wildcard(s) => format!("x{s}"),
        }
    }
}

/// Split a spec's host into its name and the port it names, if any. A part
/// after the last `:` that is not a number is left in the name, where the
/// host check reports it.
pub fn split_host_port(text: &str) -> (&str, Option<u16>) {
    match text.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match parse_port(port) {
            Some(p) => (name, Some(p)),
            None => (text, None),
        },
        _ => (text, None),
    }
}

/// A port as a spec or a request writes it: decimal digits whose value is
/// at most 65535. Leading zeros are allowed and change nothing (`08443` is
/// 8443, as RFC 3986, section 6.2.3, normalises it); anything else (a sign,
/// a blank, a larger number) is no port.
pub fn parse_port(digits: &str) -> Option<u16> {
    if digits.is_empty() {
        return None;
    }
    let mut value = 0u32;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(u16::MAX) {
            return None;
        }
    }
    u16::try_from(value).ok()
}

/// The port a `Host` field value (or an authority) names: 80, the port of
/// plain HTTP, when it names none or an empty one; `None` when what follows
/// the name is not a valid port (see [`parse_port`]).
pub fn host_port(host: &str) -> Option<u16> {
    let (_, after_name) = name_and_rest(trim_blanks(host))?;
    port_after_name(after_name)
}

/// The port what follows a host's name names (see [`host_port`]).
fn port_after_name(after_name: &str) -> Option<u16> {
    match after_name.strip_prefix(':') {
        Some("") => Some(80),
        Some(port) => parse_port(port),
        None if after_name.is_empty() => Some(80),
        None => None,
    }
}

/// A host value without the spaces and tabs around it.
fn trim_blanks(text: &str) -> &str {
    // Byte by byte: the blanks are ASCII, so every cut is a char boundary,
    // and this runs on every request.
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    let bytes = text.as_bytes();
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !blank(b)).map_or(start, |last| last + 1);
    &text[start..end]
}

/// Split a trimmed host into its name (an IPv6 literal with its brackets)
/// and what follows it: nothing, or `:` and a port. `None` when a literal
/// has no closing bracket.
fn name_and_rest(host: &str) -> Option<(&str, &str)> {
    let bytes = host.as_bytes();
    let end = if bytes.first() == Some(&b'[') {
        bytes.iter().position(|&b| b == b']')? + 1
    } else {
        bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len())
    };
    Some(host.split_at(end))
}

/// Check a `Host` field value as a request carries it, and return it
/// without surrounding blanks: a host name or IP address (an IPv6 one in
/// brackets), not empty, of the bytes a URI authority allows without user
/// information (RFC 3986, section 3.2), then at most one `:port` (see
/// [`host_port`]).
/// The gateway answers 400 to any other.
pub fn check_host_header(value: &str) -> Result<&str, &'static str> {
    let host = trim_blanks(value);
    if !host.bytes().all(is_authority_byte) {
        return Err("the host (Host or :authority) is not a host name or address");
    }
    // An `http` URI with an empty host is invalid (RFC 9110, section 4.2.1).
    let split = name_and_rest(host);
    let named = match split {
        Some((name, _)) if name.starts_with('[') => name.len() > 2,
        Some((name, _)) => !name.is_empty(),
        // An unclosed literal names what follows its bracket.
        None => host.len() > 1,
    };
    if !named {
        return Err("the host (Host or :authority) names no host");
    }
    if split.and_then(|(_, after_name)| port_after_name(after_name)).is_none() {
        return Err(
            "the host (Host or :authority) has a port that is not a number from 0 to 65535",
        );
    }
    Ok(host)
}

/// Whether `byte` may appear in a URI authority without user information:
/// unreserved, sub-delims, `%`, `:` and the brackets of an IPv6 literal.
fn is_authority_byte(byte: u8) -> bool {
    AUTHORITY_BYTES[usize::from(byte)]
}

/// [`is_authority_byte`] for every byte, worked out once.
static AUTHORITY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric();
        byte += 1;
    }
    let others = b"-._~!$&'()*+,;=%:[]";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// Reduce a Host header value to the name that routes match on: the port is
/// dropped, as is one trailing dot and surrounding whitespace. Case is left
/// alone; comparisons ignore it.
pub fn host_name(header: &str) -> &str {
    let header = trim_blanks(header);
    let bytes = header.as_bytes();
    let end = if bytes.first() == Some(&b'[') {
        // An IPv6 literal keeps its brackets; drop only what follows `]`.
        bytes.iter().position(|&b| b == b']').map_or(bytes.len(), |bracket| bracket + 1)
    } else {
        bytes.iter().rposition(|&b| b == b':').unwrap_or(bytes.len())
    };
    let name = &header[..end];
    name.strip_suffix('.').unwrap_or(name)
}

/// In a plan file, `[route, listeners, methods, rank]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "LeafFile", into = "LeafFile")]
pub(crate) struct Leaf {
    route: RouteId,
    listeners: u64,
    methods: MethodSet,
    /// Conditions beyond host and path: 1 for a method set, 1 per header,
    /// query or cookie condition. Higher ranks are tried first.
    rank: u16,
}

type LeafFile = (RouteId, u64, MethodSet, u16);

impl From<LeafFile> for Leaf {
    fn from((route, listeners, methods, rank): LeafFile) -> Leaf {
        Leaf { route, listeners, methods, rank }
    }
}

impl From<Leaf> for LeafFile {
    fn from(l: Leaf) -> LeafFile {
        (l.route, l.listeners, l.methods, l.rank)
    }
}

/// A node's children keyed by segment text, sorted by it.
type Children = Vec<(Box<str>, u32)>;

/// A trie node as [`RouterBuilder`] grows it.
#[derive(Debug, Clone, Default)]
struct BuildNode {
    /// Literal children, sorted by segment.
    literals: Children,
    /// Literal children of case-insensitive routes, by lowercase segment.
    folded: Children,
    /// Children through a parameter with a regex constraint, sorted by the regex text.
    constrained: Vec<(Pattern, u32)>,
    param: Option<u32>,
    /// Routes whose template ends here.
    end: Vec<Leaf>,
    /// Routes whose template ends with a catch-all here.
    catch_all: Vec<Leaf>,
    /// On a host's root node only: `path_regex` routes, tried after every
    /// template route of the host, by rank and then by regex text.
    regex: Vec<(Pattern, Leaf)>,
}

/// A run of entries of one of the [`Router`]'s shared lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// A trie node: where its entries start in each of the [`Router`]'s shared
/// lists, which hold the entries of every node, node by node, so that a
/// router is a handful of allocations whatever its size. A node's entries
/// end where the next node's start ([`Router::spans`] has both ends), its
/// end routes where its catch-all routes start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Node {
    /// By list: [`LITERALS`], [`FOLDED`], [`CONSTRAINED`], [`END`],
    /// [`CATCH_ALL`] and [`REGEX`].
    start: [u32; 6],
    param: Option<u32>,
}

const LITERALS: usize = 0;
const FOLDED: usize = 1;
const CONSTRAINED: usize = 2;
const END: usize = 3;
const CATCH_ALL: usize = 4;
const REGEX: usize = 5;

/// The entries of node `i` of `nodes`, given the lengths of the lists by
/// [`Node::start`]'s order.
#[inline(always)]
fn spans_of(nodes: &[Node], lens: [u32; 6], i: usize) -> Option<Spans> {
    let node = nodes.get(i)?;
    let next = nodes.get(i + 1);
    let span = |k: usize| {
        let end = match (k, next) {
            (END, _) => node.start[CATCH_ALL],
            (CATCH_ALL, Some(next)) => next.start[END],
            (_, Some(next)) => next.start[k],
            (_, None) => lens[k],
        };
        Span { start: node.start[k], len: end.saturating_sub(node.start[k]) }
    };
    Some(Spans {
        literals: span(LITERALS),
        folded: span(FOLDED),
        constrained: span(CONSTRAINED),
        param: node.param,
        end: span(END),
        catch_all: span(CATCH_ALL),
        regex: span(REGEX),
    })
}

/// A trie node's entries in the [`Router`]'s shared lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Spans {
    /// Literal children in [`Router::lits`], sorted by segment.
    literals: Span,
    /// Literal children of case-insensitive routes in [`Router::folded`],
    /// by lowercase segment.
    folded: Span,
    /// Children through a parameter with a regex constraint in
    /// [`Router::constrained`], sorted by the regex text.
    constrained: Span,
    param: Option<u32>,
    /// Routes whose template ends here, in [`Router::leaves`].
    end: Span,
    /// Routes whose template ends with a catch-all here, in [`Router::leaves`].
    catch_all: Span,
    /// On a host's root node only: `path_regex` routes in [`Router::regex`],
    /// tried after every template route of the host, by rank and then by
    /// regex text.
    regex: Span,
}

/// The compiled route trie. Build it with [`RouterBuilder`]. Deserialising
/// one prepares its lookup indexes too.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// Lowercase exact hosts and their path roots, sorted by host.
    exact: Vec<(Box<str>, u32)>,
    /// Lowercase wildcard suffixes and their path roots, longest first.
    wildcard: Vec<(Box<str>, u32)>,
    /// The path root for routes without a host.
    any: Option<u32>,
    nodes: Vec<Node>,
    /// The text of every literal and folded child, node by node, each
    /// node's literals before its folded ones.
    text: String,
    /// Every node's literal children as lookup compares them, node by node.
    lits: Vec<Lit>,
    /// Every node's case-insensitive literal children, node by node.
    folded: Vec<Lit>,
    constrained: Vec<(Pattern, u32)>,
    /// Every node's end routes and then its catch-all routes, node by node.
    leaves: Vec<Leaf>,
    regex: Vec<(Pattern, Leaf)>,
    /// Header, query and cookie conditions, by route; empty for most routes.
    conditions: Vec<Vec<Condition>>,
    /// What lookup reads of each node, by the node's index; built by
    /// [`Router::prepare`], never stored.
    hot: Vec<Hot>,
    /// The hash slots of every node with a [`Hot::shift`], node by node;
    /// built by [`Router::prepare`], never stored.
    slots: Vec<u32>,
}

/// The part of a [`Node`] that most lookups need, small enough that a walk
/// touches one cache line per node: its literal children (a range of
/// [`Router::lits`], with an optional hash index in [`Router::slots`]) and
/// its parameter child. A node with anything rarer (case-folded literals,
/// constrained parameters, catch-alls) is marked [`Hot::COLD`] and walked
/// through its full [`Node`]; routes that end at a node are always read
/// from the [`Node`], once per lookup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Hot {
    lit_start: u32,
    lit_len: u32,
    /// The parameter child, or [`Hot::NONE`].
    param: u32,
    /// Where the node's hash slots start in [`Router::slots`].
    slot_start: u32,
    /// The node's slot count minus one.
    slot_mask: u32,
    /// For a node with a hash index, 64 minus log2 of its slot count
    /// (the slot is the top bits of [`SegmentWords::hash`]); 0 without one.
    shift: u8,
    flags: u8,
}

impl Hot {
    const NONE: u32 = u32::MAX;
    /// The node has folded literals, constrained parameters or catch-alls.
    const COLD: u8 = 1;
}

/// A node in a plan file: how many entries of each shared list are its
/// (`[literals, folded, constrained, end, catch_all, regex]`) and its
/// parameter child.
type NodeFile = ([u32; 6], Option<u32>);

/// A [`Router`] as a plan file holds it: the shared lists, each literal as
/// its length in `text` and its child, and each node as its counts, so
/// that where a node's entries start follows from the nodes before it.
/// The lookup indexes that [`Router::prepare`] builds are not stored.
#[derive(Serialize, Deserialize)]
pub(crate) struct RouterFile<'a, Hosts, Nodes, Pairs, Constrained, Leaves, Regex, Conditions> {
    exact: Hosts,
    wildcard: Hosts,
    any: Option<u32>,
    nodes: Nodes,
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
    /// `(length, child)` of each literal child.
    literals: Pairs,
    /// `(length, child)` of each folded child.
    folded: Pairs,
    constrained: Constrained,
    leaves: Leaves,
    regex: Regex,
    conditions: Conditions,
}

/// What a plan file's router deserialises to before its spans are checked.
pub(crate) type OwnedRouterFile<'a> = RouterFile<
    'a,
    Vec<(Box<str>, u32)>,
    Vec<NodeFile>,
    Vec<(u32, u32)>,
    Vec<(Pattern, u32)>,
    Vec<Leaf>,
    Vec<(Pattern, Leaf)>,
    Vec<Vec<Condition>>,
>;

impl Serialize for Router {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let pairs = |lits: &[Lit]| -> Vec<(u32, u32)> {
            lits.iter().map(|l| (l.words.len, l.child)).collect()
        };
        let nodes: Vec<NodeFile> = (0..self.nodes.len())
            .filter_map(|i| self.spans(i as u32))
            .map(|n| {
                let counts = [n.literals, n.folded, n.constrained, n.end, n.catch_all, n.regex];
                (counts.map(|s| s.len), n.param)
            })
            .collect();
        RouterFile {
            exact: &self.exact,
            wildcard: &self.wildcard,
            any: self.any,
            nodes,
            text: std::borrow::Cow::Borrowed(self.text.as_str()),
            literals: pairs(&self.lits),
            folded: pairs(&self.folded),
            constrained: &self.constrained,
            leaves: &self.leaves,
            regex: &self.regex,
            conditions: &self.conditions,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Router {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Router, D::Error> {
        let file = OwnedRouterFile::deserialize(deserializer)?;
        Router::from_file(file).map_err(serde::de::Error::custom)
    }
}

impl Router {
    /// A router from its file form, each node's spans laid out from the
    /// counts, which must add up to the lists' lengths; the lookup indexes
    /// are prepared. [`Router::validate`] checks the rest.
    pub(crate) fn from_file(file: OwnedRouterFile<'_>) -> Result<Router, String> {
        let RouterFile {
            exact,
            wildcard,
            any,
            nodes: node_counts,
            text,
            literals,
            folded: folded_pairs,
            constrained,
            leaves,
            regex,
            conditions,
        } = file;
        let text = text.into_owned();
        // How many entries of each list the nodes claim, catch-all routes
        // counted with the end routes (they share the leaves).
        let mut at = [0u64; 6];
        let lens =
            [literals.len(), folded_pairs.len(), constrained.len(), leaves.len(), 0, regex.len()];
        if lens.iter().any(|&len| u32::try_from(len).is_err()) {
            return Err("the trie is too large".into());
        }
        // Each count becomes where the node's entries start: the running
        // sum over the nodes before it. Mapped in place, the counts' list
        // becomes the nodes' list without a second allocation.
        let nodes: Vec<Node> = node_counts
            .into_iter()
            .map(|(counts, param)| {
                let mut start = [0u32; 6];
                for (k, count) in counts.into_iter().enumerate() {
                    // End and catch-all routes share the leaves, one after the other.
                    let list = if k == CATCH_ALL { END } else { k };
                    start[k] = at[list].min(u64::from(u32::MAX)) as u32;
                    at[list] += u64::from(count);
                }
                Node { start, param }
            })
            .collect();
        match at.iter().zip(lens).find(|(&used, len)| used != *len as u64) {
            Some((&used, len)) if used > len as u64 => {
                return Err("the trie's nodes claim more entries than it holds".into())
            }
            Some(_) => return Err("the trie holds entries that no node claims".into()),
            None => {}
        }
        // By `Node::start`'s order, each list's length (checked to fit above).
        let lens = lens.map(|len| len as u32);
        let lens = [lens[0], lens[1], lens[2], lens[3], lens[3], lens[5]];
        // Each node's literal texts, then its folded ones.
        let mut offset = 0usize;
        let mut lits = Vec::with_capacity(literals.len());
        let mut folded = Vec::with_capacity(folded_pairs.len());
        for i in 0..nodes.len() {
            let node = spans_of(&nodes, lens, i).unwrap_or_default();
            for (out, pairs, span) in
                [(&mut lits, &literals, node.literals), (&mut folded, &folded_pairs, node.folded)]
            {
                for &(len, child) in pairs.get(span.range()).unwrap_or_default() {
                    let end = offset.checked_add(len as usize).filter(|&e| e <= text.len());
                    let Some(end) = end else {
                        return Err("the trie's literals run past their text".into());
                    };
                    out.push(Lit::new(&text.as_bytes()[offset..end], offset, child));
                    offset = end;
                }
            }
        }
        if offset != text.len() {
            return Err("the trie's literal text is longer than its literals".into());
        }
        let mut router = Router {
            exact,
            wildcard,
            any,
            nodes,
            text,
            lits,
            folded,
            constrained,
            leaves,
            regex,
            conditions,
            hot: Vec::new(),
            slots: Vec::new(),
        };
        router.prepare();
        Ok(router)
    }
}

/// A literal child as lookup compares it: its length and two words that
/// together hold every byte of a literal up to 16 bytes long (see
/// [`SegmentWords`]), so most comparisons read no string, and where its
/// text starts in [`Router::text`] for the ones that must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lit {
    words: SegmentWords,
    child: u32,
    text: u32,
}

impl Lit {
    fn new(literal: &[u8], text: usize, child: u32) -> Lit {
        Lit { words: SegmentWords::of(literal), child, text: text as u32 }
    }
}

/// A segment's length, its first eight bytes (zero-extended when it is
/// shorter) and, when it is longer than eight bytes, its last eight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct SegmentWords {
    head: u64,
    tail: u64,
    len: u32,
}

impl SegmentWords {
    fn of(segment: &[u8]) -> SegmentWords {
        let mut head = 0;
        for (i, &b) in segment.iter().take(8).enumerate() {
            head |= u64::from(b) << (8 * i);
        }
        let tail = match segment.len() {
            len if len > 8 => word(segment, len - 8),
            _ => 0,
        };
        SegmentWords { head, tail, len: segment.len() as u32 }
    }

    /// The segment of `path` that starts at `at` and ends before the next
    /// `/` or at the end, as its end offset and its words: eight bytes at a
    /// time, which for most segments is one step. Near the end of the path
    /// the path's last eight bytes are read and shifted down instead.
    #[inline(always)]
    fn split(path: &[u8], at: usize) -> (usize, SegmentWords) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        let n = path.len();
        if n < 8 {
            let end =
                path.get(at..).map_or(n, |r| at + r.iter().take_while(|&&b| b != b'/').count());
            return (end, SegmentWords::of(path.get(at..end).unwrap_or_default()));
        }
        // The eight bytes from `from` on, zero-filled past the end (a zero
        // byte is never taken for a `/`).
        let eight = |from: usize| {
            if from + 8 <= n {
                word(path, from)
            } else {
                word(path, n - 8).checked_shr(8 * (from + 8 - n) as u32).unwrap_or(0)
            }
        };
        let mut end = at;
        let first = eight(at);
        let mut x = first;
        loop {
            let y = x ^ (ONES * 0x2f);
            // The lowest byte that was a `/` is the lowest flagged one.
            let found = y.wrapping_sub(ONES) & !y & (ONES << 7);
            if found != 0 {
                end += (found.trailing_zeros() / 8) as usize;
                break;
            }
            end += 8;
            if end >= n {
                end = n;
                break;
            }
            x = eight(end);
        }
        let len = end - at;
        let (head, tail) = match len {
            0..8 => (first & ((1u64 << (8 * len)) - 1), 0),
            8 => (first, 0),
            _ => (first, word(path, end - 8)),
        };
        (end, SegmentWords { head, tail, len: len as u32 })
    }

    /// Whether equal words prove two segments equal.
    #[inline(always)]
    fn decides(&self) -> bool {
        self.len <= 16
    }

    #[inline(always)]
    fn hash(&self) -> u64 {
        (self.head ^ self.tail.rotate_left(29) ^ u64::from(self.len))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// The eight bytes of `bytes` from `at`, little-endian; the caller knows they are there.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// A facts-only view of a request, as the router needs it.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Index of the listener the request arrived on.
    pub listener: usize,
    /// The host name, as returned by [`host_name`]; empty when there is none.
    pub host: &'a str,
    pub method: Method,
    /// The path, without the query.
    pub path: &'a str,
}

impl Router {
    /// Find the best route for a request, writing its captures into `captures`.
    pub fn lookup(&self, request: &RequestFacts<'_>, captures: &mut Captures) -> Option<RouteId> {
        self.lookup_with(request, &NoFields, captures)
    }

    /// [`Router::lookup`] for routes that also match on headers, query or cookies.
    pub fn lookup_with(
        &self,
        request: &RequestFacts<'_>,
        fields: &dyn RequestFields,
        captures: &mut Captures,
    ) -> Option<RouteId> {
        captures.ranges.clear();
        if !request.path.starts_with('/') {
            return None;
        }
        let walk = Walk {
            router: self,
            listener: 1u64.checked_shl(request.listener as u32).unwrap_or(0),
            method: request.method,
            path: request.path,
            fields,
        };

        let host = request.host;
        if !self.exact.is_empty() {
            if let Ok(i) = self.exact.binary_search_by(|(h, _)| cmp_ignore_case(h, host)) {
                if let Some(r) = walk.root(self.exact[i].1, captures) {
                    return Some(r);
                }
            }
        }
        for (suffix, root) in &self.wildcard {
            if host.len() > suffix.len() && ends_with_ignore_case(host, suffix) {
                if let Some(r) = walk.root(*root, captures) {
                    return Some(r);
                }
            }
        }
        walk.root(self.any?, captures)
    }

    /// The header, query, cookie and port conditions of `route`.
    pub fn conditions(&self, route: RouteId) -> &[Condition] {
        self.conditions.get(route as usize).map_or(&[], Vec::as_slice)
    }

    /// Build the lookup indexes that plan files do not carry (building and
    /// deserialising do it already).
    pub fn prepare(&mut self) {
        self.slots.clear();
        self.hot.clear();
        self.hot.reserve(self.nodes.len());
        for i in 0..self.nodes.len() {
            let node = self.spans(i as u32).unwrap_or_default();
            let cold = node.folded.len != 0 || node.constrained.len != 0 || node.catch_all.len != 0;
            let mut hot = Hot {
                lit_start: node.literals.start,
                lit_len: node.literals.len,
                param: node.param.unwrap_or(Hot::NONE),
                slot_start: self.slots.len() as u32,
                slot_mask: 0,
                shift: 0,
                flags: if cold { Hot::COLD } else { 0 },
            };
            if node.literals.len as usize >= MIN_INDEXED {
                let lits = self.lits.get(node.literals.range()).unwrap_or_default();
                hot.shift = index_literals(lits, &mut self.slots);
                hot.slot_mask = (self.slots.len() as u32 - hot.slot_start) - 1;
            }
            self.hot.push(hot);
        }
    }

    /// Where node `id`'s entries sit in the shared lists.
    #[inline(always)]
    fn spans(&self, id: u32) -> Option<Spans> {
        let leaves = self.leaves.len() as u32;
        let lens = [
            self.lits.len() as u32,
            self.folded.len() as u32,
            self.constrained.len() as u32,
            leaves,
            leaves,
            self.regex.len() as u32,
        ];
        spans_of(&self.nodes, lens, id as usize)
    }

    /// The end routes of node `id`, which lie between two of its starts.
    #[inline(always)]
    fn end_of(&self, id: u32) -> Option<Span> {
        let node = self.nodes.get(id as usize)?;
        let (start, end) = (node.start[END], node.start[CATCH_ALL]);
        Some(Span { start, len: end.saturating_sub(start) })
    }

    /// The entries of `span` in `list`; none when a span is out of bounds,
    /// which [`Router::from_file`] rules out.
    #[inline(always)]
    fn span<T>(list: &[T], span: Span) -> &[T] {
        list.get(span.range()).unwrap_or_default()
    }

    /// The text of a literal or folded child.
    #[inline(always)]
    fn text_of(&self, lit: &Lit) -> &[u8] {
        let start = lit.text as usize;
        self.text.as_bytes().get(start..start + lit.words.len as usize).unwrap_or_default()
    }

    /// Check every index in a router read from a plan file, so that lookup
    /// cannot index out of bounds whatever the file held.
    pub(crate) fn validate(&self, route_count: usize) -> Result<(), String> {
        let node_ok = |n: u32| (n as usize) < self.nodes.len();
        let roots = self.exact.iter().chain(&self.wildcard).map(|(_, n)| *n).chain(self.any);
        if let Some(bad) = roots.clone().find(|n| !node_ok(*n)) {
            return Err(format!("host root points at node {bad}, which does not exist"));
        }
        if !self.exact.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err("exact hosts are not sorted".into());
        }
        if self.conditions.len() > route_count {
            return Err("conditions for routes that do not exist".into());
        }
        for i in 0..self.nodes.len() {
            let node = self.spans(i as u32).unwrap_or_default();
            let literals = Router::span(&self.lits, node.literals);
            let children = literals
                .iter()
                .map(|l| l.child)
                .chain(Router::span(&self.folded, node.folded).iter().map(|l| l.child))
                .chain(Router::span(&self.constrained, node.constrained).iter().map(|(_, n)| *n))
                .chain(node.param);
            if let Some(bad) = children.clone().find(|n| !node_ok(*n) || *n as usize <= i) {
                return Err(format!("node {i} points at node {bad}, which is not a later node"));
            }
            if !literals.windows(2).all(|w| self.text_of(&w[0]) < self.text_of(&w[1])) {
                return Err(format!("node {i} has unsorted literal children"));
            }
        }
        let regex = self.regex.iter().map(|(_, l)| l);
        for leaf in self.leaves.iter().chain(regex) {
            if leaf.route as usize >= route_count || !leaf.methods.is_well_formed() {
                return Err(format!("the trie holds a malformed route entry ({})", leaf.route));
            }
        }
        Ok(())
    }
}

struct Walk<'a> {
    router: &'a Router,
    listener: u64,
    method: Method,
    path: &'a str,
    fields: &'a dyn RequestFields,
}

/// Below this many literals a scan is as fast as hashing.
const MIN_INDEXED: usize = 8;
const EMPTY_SLOT: u32 = u32::MAX;

/// Append an open-addressing index over a node's literals to `slots`: slot
/// -> position in its literals, probed linearly from the top bits of
/// [`SegmentWords::hash`]. The table is at most half full, so a miss stops
/// at an empty slot within a few probes. Returns the shift that picks a
/// slot (between 1 and 60, so never 0).
fn index_literals(lits: &[Lit], slots: &mut Vec<u32>) -> u8 {
    let size = (lits.len() * 2).next_power_of_two().max(16);
    let shift = 64 - size.trailing_zeros();
    let start = slots.len();
    slots.resize(start + size, EMPTY_SLOT);
    let table = &mut slots[start..];
    for (position, lit) in lits.iter().enumerate() {
        let mut slot = (lit.words.hash() >> shift) as usize;
        while table[slot] != EMPTY_SLOT {
            slot = (slot + 1) & (size - 1);
        }
        table[slot] = position as u32;
    }
    shift as u8
}

impl Walk<'_> {
    /// Every template route under a host's root, then its `path_regex` routes.
    #[inline(always)]
    fn root(&self, id: u32, captures: &mut Captures) -> Option<RouteId> {
        if let Some(r) = self.node(id, 1, captures) {
            return Some(r);
        }
        self.regex(id, captures)
    }

    #[inline(never)]
    fn regex(&self, id: u32, captures: &mut Captures) -> Option<RouteId> {
        let span = self.router.spans(id)?.regex;
        let regex = Router::span(&self.router.regex, span);
        if regex.is_empty() {
            return None;
        }
        captures.ranges.clear();
        regex
            .iter()
            .find(|(pattern, l)| self.admits(l) && pattern.is_match(self.path))
            .map(|(_, l)| l.route)
    }

    /// `at` is the byte offset in the path of the unmatched rest, just after
    /// a `/`; one past the path's length once the path is used up (the
    /// path's length itself is an empty last segment, after a trailing `/`).
    ///
    /// This walks nodes that have only literal and parameter children from
    /// their [`Hot`] parts; a [`Hot::COLD`] node goes to [`Walk::cold`].
    /// Where a node's last alternative is a child (no other option of the
    /// node is left to try when it fails), the walk goes on in a loop rather
    /// than a nested call; a failed walk drops the captures it pushed.
    fn node(&self, mut id: u32, mut at: usize, captures: &mut Captures) -> Option<RouteId> {
        let mark = captures.ranges.len();
        let found = loop {
            let Some(hot) = self.router.hot.get(id as usize) else { break None };
            if hot.flags & Hot::COLD != 0 {
                break self.cold(id, hot, at, captures);
            }
            let bytes = self.path.as_bytes();
            if at > bytes.len() {
                break self.router.end_of(id).and_then(|end| self.pick(end));
            }

            // Split off this segment with the words that find its literal;
            // what follows the next `/` (or the end) is the next rest.
            let (end, words) = SegmentWords::split(bytes, at);
            let next = end + 1;
            if let Some(child) = self.literal(hot, at, end, &words) {
                if hot.param == Hot::NONE {
                    (id, at) = (child, next);
                    continue;
                }
                if let Some(r) = self.node(child, next, captures) {
                    break Some(r);
                }
            }
            // A parameter needs a non-empty segment; an empty one could only
            // go to a catch-all, which a hot node does not have.
            if hot.param == Hot::NONE || end == at {
                break None;
            }
            captures.ranges.push((at as u32, end as u32));
            (id, at) = (hot.param, next);
        };
        if found.is_none() {
            captures.ranges.truncate(mark);
        }
        found
    }

    /// A node with folded literals, constrained parameters or catch-alls,
    /// tried in precedence order from its full [`Node`]; a failed try drops
    /// the captures it pushed.
    #[inline(never)]
    fn cold(&self, id: u32, hot: &Hot, at: usize, captures: &mut Captures) -> Option<RouteId> {
        let node = self.router.spans(id)?;
        let bytes = self.path.as_bytes();
        if at > bytes.len() {
            if let Some(r) = self.pick(node.end) {
                return Some(r);
            }
            let end = self.path.len();
            return self.capture_rest(&node, end, end, captures);
        }
        let (end, words) = SegmentWords::split(bytes, at);
        let next = end + 1;
        // `at` and `end` sit next to a `/` or at an end of the path, so
        // this slice never splits a character.
        let segment = bytes.get(at..end)?;

        if let Some(child) = self.literal(hot, at, end, &words) {
            if let Some(r) = self.node(child, next, captures) {
                return Some(r);
            }
        }
        for folded in Router::span(&self.router.folded, node.folded) {
            if folded.words.len as usize == segment.len()
                && self.router.text_of(folded).eq_ignore_ascii_case(segment)
            {
                if let Some(r) = self.node(folded.child, next, captures) {
                    return Some(r);
                }
            }
        }
        if segment.is_empty() {
            return self.capture_rest(&node, at, self.path.len(), captures);
        }
        for (pattern, child) in Router::span(&self.router.constrained, node.constrained) {
            if !pattern.is_match(self.path.get(at..end).unwrap_or_default()) {
                continue;
            }
            captures.ranges.push((at as u32, end as u32));
            if let Some(r) = self.node(*child, next, captures) {
                return Some(r);
            }
            captures.ranges.pop();
        }
        if let Some(child) = node.param {
            captures.ranges.push((at as u32, end as u32));
            if let Some(r) = self.node(child, next, captures) {
                return Some(r);
            }
            captures.ranges.pop();
        }
        self.capture_rest(&node, at, self.path.len(), captures)
    }

    /// The literal child of a node for the segment at `at..end`, whose
    /// words are `words`: by hash when the node has many literals, else by
    /// a scan of their words.
    #[inline(always)]
    fn literal(&self, hot: &Hot, at: usize, end: usize, words: &SegmentWords) -> Option<u32> {
        let start = hot.lit_start as usize;
        let lits = self.router.lits.get(start..start + hot.lit_len as usize)?;
        let same =
            |lit: &Lit| lit.words == *words && (words.decides() || self.long_literal(lit, at, end));
        if hot.shift != 0 {
            let mask = hot.slot_mask as usize;
            let slot_start = hot.slot_start as usize;
            let table = self.slots().get(slot_start..=slot_start + mask)?;
            let mut slot = (words.hash() >> hot.shift) as usize;
            loop {
                // An empty slot holds no position, so the miss ends here.
                let position = *table.get(slot)? as usize;
                let lit = lits.get(position)?;
                if same(lit) {
                    return Some(lit.child);
                }
                slot = (slot + 1) & mask;
            }
        }
        for lit in lits {
            if same(lit) {
                return Some(lit.child);
            }
        }
        None
    }

    #[inline(always)]
    fn slots(&self) -> &[u32] {
        &self.router.slots
    }

    /// Whether `lit`, longer than its words tell, is the path's bytes `at..end`.
    #[cold]
    #[inline(never)]
    fn long_literal(&self, lit: &Lit, at: usize, end: usize) -> bool {
        Some(self.router.text_of(lit)) == self.path.as_bytes().get(at..end)
    }

    fn capture_rest(
        &self,
        node: &Spans,
        start: usize,
        end: usize,
        captures: &mut Captures,
    ) -> Option<RouteId> {
        let route = self.pick(node.catch_all)?;
        captures.ranges.push((start as u32, end as u32));
        Some(route)
    }

    #[inline(always)]
    fn pick(&self, leaves: Span) -> Option<RouteId> {
        Router::span(&self.router.leaves, leaves).iter().find(|l| self.admits(l)).map(|l| l.route)
    }

    /// Whether a route at a matching place serves this request.
    #[inline(always)]
    fn admits(&self, l: &Leaf) -> bool {
        l.listeners & self.listener != 0
            && l.methods.contains(self.method)
            && (l.rank == 0 || self.conditions_hold(l.route))
    }

    #[inline(never)]
    fn conditions_hold(&self, route: RouteId) -> bool {
        self.router
            .conditions
            .get(route as usize)
            .is_none_or(|all| all.iter().all(|c| c.holds(self.fields)))
    }
}

fn cmp_ignore_case(lower: &str, other: &str) -> Ordering {
    let a = lower.bytes();
    let b = other.bytes().map(|c| c.to_ascii_lowercase());
    a.cmp(b)
}

fn ends_with_ignore_case(host: &str, lower_suffix: &str) -> bool {
    let tail = &host.as_bytes()[host.len() - lower_suffix.len()..];
    tail.eq_ignore_ascii_case(lower_suffix.as_bytes())
}

/// What a route contributes to the trie.
#[derive(Debug, Clone)]
pub struct RouteKey<'a> {
    pub host: &'a HostPattern,
    pub template: &'a Template,
    /// Bit `i` set when the route serves listener `i`.
    pub listeners: u64,
    pub methods: MethodSet,
}

/// Builds a [`Router`], refusing routes that tie with one already inserted.
#[derive(Debug, Default)]
pub struct RouterBuilder {
    tree: Tree,
    roots: HashMap<HostPattern, u32>,
}

/// The trie as [`RouterBuilder`] grows it, before [`RouterBuilder::build`]
/// lays it out as a [`Router`].
#[derive(Debug, Default)]
struct Tree {
    exact: Vec<(Box<str>, u32)>,
    wildcard: Vec<(Box<str>, u32)>,
    any: Option<u32>,
    nodes: Vec<BuildNode>,
    conditions: Vec<Vec<Condition>>,
}

impl RouterBuilder {
    pub fn new() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// Insert a route. When an earlier route would be tied with it for some
    /// request, nothing is inserted and the earlier route is returned.
    pub fn insert(&mut self, route: RouteId, key: &RouteKey<'_>) -> Result<(), RouteId> {
        self.insert_with_conditions(route, key, Vec::new())
    }

    /// [`RouterBuilder::insert`] for a route with header, query or cookie conditions.
    pub fn insert_with_conditions(
        &mut self,
        route: RouteId,
        key: &RouteKey<'_>,
        conditions: Vec<Condition>,
    ) -> Result<(), RouteId> {
        let mut node = self.root(key.host);
        let mut ends_in_catch_all = false;
        for (i, segment) in key.template.segments.iter().enumerate() {
            node = match segment {
                Segment::Literal(l) if key.template.case_insensitive => {
                    self.folded_child(node, &l.to_ascii_lowercase())
                }
                Segment::Literal(l) => self.literal_child(node, l),
                Segment::Param(_) => match key.template.constraint(i) {
                    Some(pattern) => self.constrained_child(node, pattern),
                    None => self.param_child(node),
                },
                Segment::CatchAll(_) => {
                    ends_in_catch_all = true;
                    break;
                }
            };
        }

        let rank = u16::from(!key.methods.is_any()) + conditions.len().min(1000) as u16;
        let leaf = Leaf { route, listeners: key.listeners, methods: key.methods, rank };
        let order_key = order_key(&conditions);
        let all = &self.tree.conditions;
        let none = Vec::new();
        let conditions_of = |r: RouteId| all.get(r as usize).unwrap_or(&none);

        let node = &mut self.tree.nodes[node as usize];
        let leaves = if ends_in_catch_all { &mut node.catch_all } else { &mut node.end };
        if let Some(other) =
            leaves.iter().find(|l| ties(l, &leaf) && !excludes(conditions_of(l.route), &conditions))
        {
            return Err(other.route);
        }
        // Higher rank first; at equal rank, a fixed order by condition text, so
        // the file's order never matters (ties were refused above).
        let at = leaves.partition_point(|l| {
            l.rank > rank || (l.rank == rank && order_key_of(conditions_of(l.route)) <= order_key)
        });
        leaves.insert(at, leaf);

        self.store_conditions(route, conditions);
        Ok(())
    }

    pub fn build(mut self) -> Router {
        self.tree.exact.sort();
        self.tree.wildcard.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        self.renumber();
        let Tree { exact, wildcard, any, nodes: built, conditions } = self.tree;
        let mut router = Router { exact, wildcard, any, conditions, ..Router::default() };
        let r = &mut router;
        for node in &built {
            let (lits, folded, constrained) = (r.lits.len(), r.folded.len(), r.constrained.len());
            for (list, children) in [(&mut r.lits, &node.literals), (&mut r.folded, &node.folded)] {
                for (literal, child) in children {
                    list.push(Lit::new(literal.as_bytes(), r.text.len(), *child));
                    r.text.push_str(literal);
                }
            }
            r.constrained.extend(node.constrained.iter().cloned());
            let (end, regex) = (r.leaves.len(), r.regex.len());
            r.leaves.extend(&node.end);
            let catch_all = r.leaves.len();
            r.leaves.extend(&node.catch_all);
            r.regex.extend(node.regex.iter().cloned());
            let start = [lits, folded, constrained, end, catch_all, regex].map(|s| s as u32);
            r.nodes.push(Node { start, param: node.param });
        }
        router.prepare();
        router
    }

    fn root(&mut self, host: &HostPattern) -> u32 {
        if let Some(n) = self.roots.get(host) {
            return *n;
        }
        let n = self.new_node();
        match host {
            HostPattern::Any => self.tree.any = Some(n),
            HostPattern::Exact(h) => self.tree.exact.push((h.as_str().into(), n)),
            HostPattern::Wildcard(s) => self.tree.wildcard.push((s.as_str().into(), n)),
        }
        self.roots.insert(host.clone(), n);
        n
    }

    fn new_node(&mut self) -> u32 {
        self.tree.nodes.push(BuildNode::default());
        (self.tree.nodes.len() - 1) as u32
    }

    fn literal_child(&mut self, node: u32, literal: &str) -> u32 {
        self.sorted_child(node, literal, |n| &mut n.literals)
    }

    fn folded_child(&mut self, node: u32, folded: &str) -> u32 {
        self.sorted_child(node, folded, |n| &mut n.folded)
    }

    /// The child under `key` in one of `node`'s sorted child lists, created
    /// (keeping the list sorted) when it is not there yet.
    fn sorted_child(
        &mut self,
        node: u32,
        key: &str,
        list: fn(&mut BuildNode) -> &mut Children,
    ) -> u32 {
        let children = list(&mut self.tree.nodes[node as usize]);
        match children.binary_search_by(|(l, _)| (**l).cmp(key)) {
            Ok(i) => children[i].1,
            Err(i) => {
                let child = self.new_node();
                list(&mut self.tree.nodes[node as usize]).insert(i, (key.into(), child));
                child
            }
        }
    }

    /// Keep a route's conditions where lookup finds them (routes without any
    /// take no slot beyond the last route that has some).
    fn store_conditions(&mut self, route: RouteId, conditions: Vec<Condition>) {
        if conditions.is_empty() {
            return;
        }
        let slot = route as usize;
        if self.tree.conditions.len() <= slot {
            self.tree.conditions.resize(slot + 1, Vec::new());
        }
        self.tree.conditions[slot] = conditions;
    }

    /// Insert a `path_regex` route under `host`. Like [`RouterBuilder::insert`],
    /// a route tied with an earlier one (same regex, rank and overlapping
    /// listeners, methods and conditions) is refused.
    pub fn insert_regex(
        &mut self,
        route: RouteId,
        host: &HostPattern,
        pattern: Pattern,
        listeners: u64,
        methods: MethodSet,
        conditions: Vec<Condition>,
    ) -> Result<(), RouteId> {
        let root = self.root(host);
        let rank = u16::from(!methods.is_any()) + conditions.len().min(1000) as u16;
        let leaf = Leaf { route, listeners, methods, rank };
        let all = &self.tree.conditions;
        let none = Vec::new();
        let conditions_of = |r: RouteId| all.get(r as usize).unwrap_or(&none);

        let regex = &mut self.tree.nodes[root as usize].regex;
        let tied = regex.iter().find(|(p, l)| {
            *p == pattern && ties(l, &leaf) && !excludes(conditions_of(l.route), &conditions)
        });
        if let Some((_, other)) = tied {
            return Err(other.route);
        }
        let at = regex.partition_point(|(p, l)| {
            l.rank > rank || (l.rank == rank && p.as_str() <= pattern.as_str())
        });
        regex.insert(at, (pattern, leaf));
        self.store_conditions(route, conditions);
        Ok(())
    }

    fn constrained_child(&mut self, node: u32, pattern: &Pattern) -> u32 {
        let children = &self.tree.nodes[node as usize].constrained;
        match children.binary_search_by(|(p, _)| p.as_str().cmp(pattern.as_str())) {
            Ok(i) => children[i].1,
            Err(i) => {
                let child = self.new_node();
                self.tree.nodes[node as usize].constrained.insert(i, (pattern.clone(), child));
                child
            }
        }
    }

    fn param_child(&mut self, node: u32) -> u32 {
        if let Some(child) = self.tree.nodes[node as usize].param {
            return child;
        }
        let child = self.new_node();
        self.tree.nodes[node as usize].param = Some(child);
        child
    }

    /// Lay nodes out in depth-first order, so a walk reads memory mostly
    /// forwards and every child has a larger index than its parent (which
    /// `Router::validate` relies on to rule out cycles in a plan file).
    fn renumber(&mut self) {
        let old = std::mem::take(&mut self.tree.nodes);
        let mut order = Vec::with_capacity(old.len());
        let mut new_id = vec![u32::MAX; old.len()];
        let roots = self.tree.exact.iter().chain(&self.tree.wildcard).map(|(_, n)| *n);
        let mut stack: Vec<u32> = roots.chain(self.tree.any).collect();
        stack.reverse();
        while let Some(n) = stack.pop() {
            new_id[n as usize] = order.len() as u32;
            order.push(n);
            let node = &old[n as usize];
            stack.extend(node.param);
            stack.extend(node.constrained.iter().rev().map(|(_, c)| *c));
            stack.extend(node.folded.iter().rev().map(|(_, c)| *c));
            stack.extend(node.literals.iter().rev().map(|(_, c)| *c));
        }

        let remap = |n: &mut u32| *n = new_id[*n as usize];
        self.tree.nodes = order
            .iter()
            .map(|&n| {
                let mut node = old[n as usize].clone();
                node.literals.iter_mut().for_each(|(_, c)| remap(c));
                node.constrained.iter_mut().for_each(|(_, c)| remap(c));
                node.folded.iter_mut().for_each(|(_, c)| remap(c));
                node.param.as_mut().map(remap);
                node
            })
            .collect();
        self.tree.exact.iter_mut().for_each(|(_, n)| remap(n));
        self.tree.wildcard.iter_mut().for_each(|(_, n)| remap(n));
        self.tree.any.as_mut().map(remap);
    }
}

/// Two leaves at the same node tie when some request on some listener with
/// some method would reach both, and neither outranks the other.
fn ties(a: &Leaf, b: &Leaf) -> bool {
    a.listeners & b.listeners != 0 && a.rank == b.rank && a.methods.intersects(b.methods)
}

/// Whether no request can satisfy both condition lists.
fn excludes(a: &[Condition], b: &[Condition]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.excludes(y)))
}

fn order_key(conditions: &[Condition]) -> String {
    let mut keys: Vec<String> = conditions.iter().map(Condition::key).collect();
    keys.sort();
    keys.join("\n")
}

fn order_key_of(conditions: &[Condition]) -> String {
    order_key(conditions)
}

#[cfg(test)]
mod tests;
