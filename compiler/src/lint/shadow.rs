//! `S0212 shadowed-route`: a route that can never match because other
//! routes take every request it matches.
//!
//! # When a route is shadowed
//!
//! Lookup walks the routes in precedence order (listener, host, then path
//! segment by segment with literal before `{param}` before `{*catch_all}`,
//! then routes with `methods` before routes without) and returns the first
//! route that fits the request. Under that order no *single* route can take
//! all of another's requests: a route that matches everything route R
//! matches is at least as general in host and path, so it comes after R
//! at the first place they differ, and two routes at the same place either
//! tie (an `S0203` ambiguity) or differ in methods, where the one with
//! `methods` wins only the methods it lists (never an extension method,
//! which only R would match if R lists none). Shadowing therefore
//! takes several routes, and only a route ending in a catch-all can suffer
//! it: every other route is the first candidate for its own requests.
//!
//! For a catch-all route R at trie position N (its host, then its path up
//! to the catch-all), and for each listener R serves and each method R
//! matches (extension methods as one class), R is shadowed when both hold:
//!
//! - a request whose path ends at N is taken by a route that ends at N, or
//!   by a route that ends in a catch-all at N and lists methods while R does
//!   not (it is tried first);
//! - a request whose path continues past N is taken there: the empty
//!   segment by the literal-`""` branch below N and every other segment by
//!   the `{param}` branch below N, each *covering* its branch, or by a
//!   catch-all at N tried before R.
//!
//! A branch covers when every continuation is taken inside it: a path that
//! ends at its node by a route that ends there or a catch-all there, and a
//! longer path by a catch-all there or, recursively, by both its `""` and
//! its `{param}` branches. Literal branches other than `""` never cover,
//! since infinitely many segments miss them.
//!
//! The rule only ever under-counts what other routes take: routes that win
//! some of R's requests from another host or an earlier path branch only
//! shadow R further, and are ignored. So every finding is real. A few sample
//! requests of R are then run through a reference lookup that follows the
//! documented precedence; they name the routes that take them in the
//! finding, and if one of them reached R the finding is dropped.
//!
//! Routes with match conditions other than host, path and methods, with
//! values `validate` refuses, or that tie with another route (`S0203`) are
//! left out of the analysis entirely.

use std::collections::{BTreeMap, HashMap};

use crate::diagnostic::{codes, Diagnostic};
use crate::document::Document;
use crate::method::{Method, MethodSet};
use crate::router::HostPattern;
use crate::spec::{Route, Spec};
use crate::template::{Segment, Template};

/// A route the analysis understands.
struct Entry {
    /// Index in `spec.routes`.
    index: usize,
    host: HostPattern,
    /// The literal and parameter segments before a final catch-all.
    prefix: Vec<Segment>,
    catch_all: bool,
    /// Bit `i` for each defined listener `i` the route serves.
    listeners: u64,
    methods: MethodSet,
}

/// One listener and one method (or the class of extension methods).
#[derive(Debug, Clone, Copy)]
struct Class {
    listener: usize,
    method: Method,
}

impl Entry {
    fn takes(&self, c: Class) -> bool {
        self.listeners & (1 << c.listener) != 0 && self.methods.contains(c.method)
    }
}

#[derive(Default)]
struct Node {
    literals: BTreeMap<String, usize>,
    param: Option<usize>,
    /// Entries whose path ends here, those with `methods` first.
    end: Vec<usize>,
    /// Entries that end with a catch-all here, those with `methods` first.
    catch_all: Vec<usize>,
}

/// The routes by host and path, in precedence order: a model of the trie
/// built from the spec alone.
struct Tree {
    entries: Vec<Entry>,
    nodes: Vec<Node>,
    roots: HashMap<HostPattern, usize>,
    /// Position of each entry's leaf: its node.
    leaf: Vec<usize>,
}

pub(super) fn shadowed_routes(doc: &Document, spec: &Spec) -> Vec<Diagnostic> {
    let listeners = spec.listeners.len().min(64);
    if listeners == 0 {
        return Vec::new();
    }
    let entries: Vec<Entry> =
        spec.routes.iter().enumerate().filter_map(|(i, r)| entry(spec, i, r)).collect();
    // Routes that tie with another are an `S0203` finding, and which of the
    // two a request would reach is not defined: neither covers anything.
    let tied = Tree::build(entries).tied();
    let entries = tied.into_iter().filter_map(|(entry, tied)| (!tied).then_some(entry)).collect();
    let tree = Tree::build(entries);

    let mut out = Vec::new();
    for (e, entry) in tree.entries.iter().enumerate() {
        if !entry.catch_all {
            continue;
        }
        let classes = classes(entry, listeners);
        if classes.is_empty() || !classes.iter().all(|&c| tree.shadowed(e, c)) {
            continue;
        }
        if let Some(d) = tree.finding(doc, spec, e, &classes) {
            out.push(d);
        }
    }
    out
}

/// The analysable view of a route, or `None` when it has conditions the
/// analysis does not model or values that `validate` refuses.
fn entry(spec: &Spec, index: usize, route: &Route) -> Option<Entry> {
    let matcher = serde_json::to_value(&route.matcher).ok()?;
    let known = ["host", "path", "methods"];
    if !matcher.as_object()?.keys().all(|k| known.contains(&k.as_str())) {
        return None;
    }
    let path = &route.matcher.path;
    if path.split('/').any(|s| s.starts_with('{') && s.contains(':')) {
        return None; // a constrained parameter matches only some segments
    }
    let template = Template::parse(path).ok()?;
    if !route.matcher.host.as_deref().is_none_or(host_is_valid) {
        return None;
    }

    let defined = spec.listeners.len().min(64);
    let listeners = match &route.listeners {
        None => (0..defined).fold(0u64, |m, i| m | 1 << i),
        Some(names) => {
            let mut mask = 0u64;
            for name in names {
                let i = spec.listeners.iter().position(|l| &l.name == name)?;
                if i >= 64 {
                    return None;
                }
                mask |= 1 << i;
            }
            mask
        }
    };
    let methods = route
        .matcher
        .methods
        .as_ref()
        .map_or(MethodSet::ANY, |m| MethodSet::of(m.iter().map(|&m| Method::from(m))));

    let mut prefix = template.segments;
    let catch_all = matches!(prefix.last(), Some(Segment::CatchAll(_)));
    if catch_all {
        prefix.pop();
    }
    Some(Entry {
        index,
        host: HostPattern::parse(route.matcher.host.as_deref()),
        prefix,
        catch_all,
        listeners,
        methods,
    })
}

/// The host forms `validate` accepts: labels of letters, digits and `-`,
/// optionally after a leading `*.`.
fn host_is_valid(text: &str) -> bool {
    let name = text.strip_prefix("*.").unwrap_or(text);
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Every (listener, method) class of requests a route can receive, in the
/// order examples are drawn from: listeners in spec order, `GET` first.
fn classes(entry: &Entry, listeners: usize) -> Vec<Class> {
    const METHODS: [Method; 10] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
        Method::Trace,
        Method::Connect,
        Method::Other,
    ];
    let mut out = Vec::new();
    for listener in (0..listeners).filter(|l| entry.listeners & (1 << l) != 0) {
        for method in METHODS.into_iter().filter(|m| entry.methods.contains(*m)) {
            out.push(Class { listener, method });
        }
    }
    out
}

impl Tree {
    fn build(entries: Vec<Entry>) -> Tree {
        let mut tree = Tree {
            entries: Vec::new(),
            nodes: Vec::new(),
            roots: HashMap::new(),
            leaf: Vec::new(),
        };
        for (e, entry) in entries.iter().enumerate() {
            let mut node = match tree.roots.get(&entry.host) {
                Some(&n) => n,
                None => {
                    let n = tree.new_node();
                    tree.roots.insert(entry.host.clone(), n);
                    n
                }
            };
            for segment in &entry.prefix {
                node = tree.child(node, segment);
            }
            let n = &mut tree.nodes[node];
            let list = if entry.catch_all { &mut n.catch_all } else { &mut n.end };
            list.push(e);
            tree.leaf.push(node);
        }

        // Within a leaf, routes with `methods` are tried first.
        for node in &mut tree.nodes {
            for list in [&mut node.end, &mut node.catch_all] {
                list.sort_by_key(|&e| entries[e].methods.is_any());
            }
        }
        tree.entries = entries;
        tree
    }

    /// Every entry, with whether it ties with another at its leaf.
    fn tied(self) -> Vec<(Entry, bool)> {
        let mut tied = vec![false; self.entries.len()];
        for node in &self.nodes {
            for list in [&node.end, &node.catch_all] {
                for (i, &a) in list.iter().enumerate() {
                    for &b in &list[i + 1..] {
                        let (x, y) = (&self.entries[a], &self.entries[b]);
                        if x.listeners & y.listeners != 0
                            && x.methods.is_any() == y.methods.is_any()
                            && x.methods.intersects(y.methods)
                        {
                            tied[a] = true;
                            tied[b] = true;
                        }
                    }
                }
            }
        }
        self.entries.into_iter().zip(tied).collect()
    }

    fn new_node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    fn child(&mut self, node: usize, segment: &Segment) -> usize {
        let existing = match segment {
            Segment::Literal(l) => self.nodes[node].literals.get(l).copied(),
            _ => self.nodes[node].param,
        };
        if let Some(child) = existing {
            return child;
        }
        let child = self.new_node();
        match segment {
            Segment::Literal(l) => {
                self.nodes[node].literals.insert(l.clone(), child);
            }
            _ => self.nodes[node].param = Some(child),
        }
        child
    }

    fn takes_any(&self, list: &[usize], c: Class) -> bool {
        list.iter().any(|&e| self.entries[e].takes(c))
    }

    /// Whether every request of class `c` that catch-all entry `e` matches
    /// is taken by another route first.
    fn shadowed(&self, e: usize, c: Class) -> bool {
        let entry = &self.entries[e];
        let node = &self.nodes[self.leaf[e]];
        // Catch-alls at the same node tried before `e`: those with `methods`
        // when `e` has none (the others tie with it, which `validate` reports).
        let before: Vec<usize> = node
            .catch_all
            .iter()
            .copied()
            .filter(|&o| o != e && entry.methods.is_any() && !self.entries[o].methods.is_any())
            .collect();
        if self.takes_any(&before, c) {
            return true;
        }

        // The lookup always has a (possibly empty) segment at a host's root,
        // so only a deeper node sees paths that end exactly there.
        let at_root = self.roots.get(&entry.host) == Some(&self.leaf[e]);
        let ends_taken = at_root || self.takes_any(&node.end, c);
        ends_taken && self.branches_cover(node, c)
    }

    /// Whether the `""` and `{param}` branches below `node` together take
    /// every longer path.
    fn branches_cover(&self, node: &Node, c: Class) -> bool {
        let empty = node.literals.get("").is_some_and(|&n| self.covers(n, c));
        empty && node.param.is_some_and(|n| self.covers(n, c))
    }

    /// Whether every path that reaches node `n` is taken in its subtree.
    fn covers(&self, n: usize, c: Class) -> bool {
        let node = &self.nodes[n];
        if self.takes_any(&node.catch_all, c) {
            return true;
        }
        self.takes_any(&node.end, c) && self.branches_cover(node, c)
    }

    /// The route a request goes to under the documented precedence.
    fn lookup(&self, c: Class, host: &str, path: &str) -> Option<usize> {
        let rest = path.strip_prefix('/')?;
        let host = host.to_ascii_lowercase();
        let mut roots: Vec<(&HostPattern, usize)> = self
            .roots
            .iter()
            .filter(|(p, _)| match p {
                HostPattern::Exact(h) => *h == host,
                HostPattern::Wildcard(s) => host.len() > s.len() && host.ends_with(s.as_str()),
                HostPattern::Any => true,
            })
            .map(|(p, &n)| (p, n))
            .collect();
        roots.sort_by_key(|(p, _)| match p {
            HostPattern::Exact(_) => (0, 0),
            HostPattern::Wildcard(s) => (1, usize::MAX - s.len()),
            HostPattern::Any => (2, 0),
        });
        roots.into_iter().find_map(|(_, root)| self.walk(root, Some(rest), c))
    }

    fn walk(&self, n: usize, rest: Option<&str>, c: Class) -> Option<usize> {
        let node = &self.nodes[n];
        let pick = |list: &[usize]| list.iter().copied().find(|&e| self.entries[e].takes(c));
        let Some(rest) = rest else {
            return pick(&node.end).or_else(|| pick(&node.catch_all));
        };
        let (segment, next) = match rest.split_once('/') {
            Some((segment, next)) => (segment, Some(next)),
            None => (rest, None),
        };
        if let Some(r) = node.literals.get(segment).and_then(|&child| self.walk(child, next, c)) {
            return Some(r);
        }
        if let (Some(child), false) = (node.param, segment.is_empty()) {
            if let Some(r) = self.walk(child, next, c) {
                return Some(r);
            }
        }
        pick(&node.catch_all)
    }

    /// The finding for shadowed entry `e`, with sample requests that show
    /// who takes its requests; `None` if a sample reaches `e` after all.
    fn finding(
        &self,
        doc: &Document,
        spec: &Spec,
        e: usize,
        classes: &[Class],
    ) -> Option<Diagnostic> {
        let entry = &self.entries[e];
        let host = entry.host.example();
        let mut base = String::new();
        for segment in &entry.prefix {
            base.push('/');
            base.push_str(match segment {
                Segment::Literal(l) => l,
                _ => "x",
            });
        }
        let mut paths = vec![base.clone(), format!("{base}/"), format!("{base}/x")];
        paths.push(format!("{base}/x/y"));
        if base.is_empty() {
            paths.remove(0); // every request path has at least `/`
        }

        // Who takes each sample, in class order; a sample reaching `e` means
        // the analysis was wrong, and nothing is reported.
        let mut takers: Vec<(usize, String)> = Vec::new();
        for &c in classes {
            for path in &paths {
                let taker = self.lookup(c, &host, path)?;
                if taker == e {
                    return None;
                }
                if !takers.iter().any(|(t, _)| *t == taker) {
                    takers.push((taker, request_text(spec, c, &host, path)));
                }
            }
        }

        let name = &spec.routes[entry.index].name;
        let examples: Vec<String> = takers
            .iter()
            .take(2)
            .map(|(t, request)| {
                format!("{request} goes to `{}`", spec.routes[self.entries[*t].index].name)
            })
            .collect();
        let mut d = Diagnostic::error(
            codes::SHADOWED_ROUTE,
            format!(
                "route `{name}` can never match: other routes take every request it matches, for example {}",
                examples.join(", and ")
            ),
        )
        .with_help(format!(
            "delete `{name}`, or change its host, path, methods or listeners so that it matches requests no other route takes"
        ))
        .at_key(doc, &format!("/routes/{}/match", entry.index));
        for (t, request) in takers.iter().take(3) {
            let other = self.entries[*t].index;
            d = d.with_key_label(
                doc,
                &format!("/routes/{other}/match"),
                format!("`{}` takes {request}", spec.routes[other].name),
            );
        }
        Some(d)
    }
}

fn request_text(spec: &Spec, c: Class, host: &str, path: &str) -> String {
    let method = match c.method {
        Method::Other => "PURGE".to_owned(),
        m => MethodSet::of([m]).first().unwrap_or("GET").to_owned(),
    };
    let on = if spec.listeners.len() > 1 {
        format!(" on listener `{}`", spec.listeners[c.listener].name)
    } else {
        String::new()
    };
    format!("{method} http://{host}{path}{on}")
}

#[cfg(test)]
mod tests;
