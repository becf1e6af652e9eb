//! A source file's text as a finding's excerpt shows it.
//!
//! A human report quotes the lines around each finding, and those lines are
//! the file's own text, which may hold characters a terminal acts on rather
//! than shows: an escape sequence, a bell, a carriage return that lets the
//! rest of a line be written over the start, a character that reorders the
//! text around it. In an excerpt each of them is written as its escape, as
//! in messages (`\u{1b}`, `\r`, `\u{202e}`), and every span is moved with
//! the text, so that a label still points at the characters it is about.
//! Line breaks (`\n`, and `\r` right before one) and tabs, which the report
//! lays out itself, stay as they are.

use crate::diagnostic::{is_hidden, push_escape};

/// The shown text, and where it differs from the source.
#[derive(Debug, Clone)]
pub(crate) struct Excerpt {
    pub(crate) text: String,
    /// The escaped characters, in order.
    marks: Vec<Mark>,
}

/// One escaped character: at `source` in the source, `source_len` bytes
/// long; at `shown` in the excerpt, `shown_len` bytes long.
#[derive(Debug, Clone, Copy)]
struct Mark {
    source: usize,
    source_len: usize,
    shown: usize,
    shown_len: usize,
}

impl Excerpt {
    /// The excerpt of `text`, or `None` when it shows `text` as it is.
    pub(crate) fn of(text: &str) -> Option<Excerpt> {
        let mut chars = text.char_indices().peekable();
        let escaped = |c: char, next: Option<char>| match c {
            '\n' | '\t' => false,
            '\r' => next != Some('\n'),
            c => is_hidden(c),
        };
        let mut first = None;
        while let Some((at, c)) = chars.next() {
            if escaped(c, chars.peek().map(|&(_, c)| c)) {
                first = Some(at);
                break;
            }
        }
        let first = first?;

        let mut shown = String::with_capacity(text.len() + 16);
        shown.push_str(&text[..first]);
        let mut marks = Vec::new();
        let mut chars = text[first..].char_indices().map(|(i, c)| (first + i, c)).peekable();
        while let Some((at, c)) = chars.next() {
            if escaped(c, chars.peek().map(|&(_, c)| c)) {
                let start = shown.len();
                push_escape(&mut shown, c);
                marks.push(Mark {
                    source: at,
                    source_len: c.len_utf8(),
                    shown: start,
                    shown_len: shown.len() - start,
                });
            } else {
                shown.push(c);
            }
        }
        Some(Excerpt { text: shown, marks })
    }

    /// Where the source span `(offset, len)` is in the excerpt. A span that
    /// starts or ends inside an escaped character covers all of its escape.
    pub(crate) fn span(&self, offset: usize, len: usize) -> (usize, usize) {
        let start = self.shown_offset(offset, false);
        let end = self.shown_offset(offset.saturating_add(len), true);
        (start, end.saturating_sub(start))
    }

    /// The excerpt offset of source offset `at`; one inside an escaped
    /// character is moved to the start of its escape, or past its end when
    /// `end` is set.
    fn shown_offset(&self, at: usize, end: bool) -> usize {
        let before = self.marks.partition_point(|m| m.source <= at);
        let Some(m) = before.checked_sub(1).map(|i| self.marks[i]) else { return at };
        if at == m.source || (at < m.source + m.source_len && !end) {
            m.shown
        } else if at < m.source + m.source_len {
            m.shown + m.shown_len
        } else {
            m.shown + m.shown_len + (at - m.source - m.source_len)
        }
    }

    /// The source offset of excerpt offset `at`; one inside an escape is
    /// moved to the start of the character it stands for.
    pub(crate) fn source_offset(&self, at: usize) -> usize {
        let before = self.marks.partition_point(|m| m.shown <= at);
        let Some(m) = before.checked_sub(1).map(|i| self.marks[i]) else { return at };
        if at < m.shown + m.shown_len {
            m.source
        } else {
            m.source + m.source_len + (at - m.shown - m.shown_len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_shown_as_it_is() {
        assert!(Excerpt::of("a: b\r\n\tc: \"é\"\n").is_none());
    }

    #[test]
    fn hidden_characters_are_escaped_and_spans_follow_them() {
        let text = "a: \"\u{1b}[31mred\u{202e}x\"\rb\r\nc: d\n";
        let e = Excerpt::of(text).unwrap();
        assert_eq!(e.text, "a: \"\\u{1b}[31mred\\u{202e}x\"\\rb\r\nc: d\n");
        let at = |needle: &str| text.find(needle).unwrap();
        let shown = |needle: &str| e.text.find(needle).unwrap();
        // The escaped character itself, then text after each escape.
        assert_eq!(e.span(at("\u{1b}"), 1), (shown("\\u{1b}"), 6));
        assert_eq!(e.span(at("\u{1b}"), 0), (shown("\\u{1b}"), 0));
        assert_eq!(e.span(at("red"), 3), (shown("red"), 3));
        assert_eq!(e.span(at("x\""), 1), (shown("x\""), 1));
        assert_eq!(e.span(at("c: d"), 4), (shown("c: d"), 4));
        // The whole quoted value, escapes and all.
        let value = "\"\u{1b}[31mred\u{202e}x\"";
        assert_eq!(e.span(at(value), value.len()), (shown("\"\\u{1b}"), 24));
        // A span starting inside U+202E's three bytes covers its escape.
        assert_eq!(e.span(at("\u{202e}") + 1, 1), (shown("\\u{202e}"), 8));
        for needle in ["a:", "[31m", "red", "x\"", "b\r", "c: d"] {
            assert_eq!(e.source_offset(shown(needle)), at(needle), "{needle}");
        }
        assert_eq!(e.source_offset(shown("\\u{202e}") + 3), at("\u{202e}"));
    }
}
