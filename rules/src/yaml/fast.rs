//! A fast path for the YAML that homelab repos mostly hold: block mappings and sequences,
//! plain, quoted and block scalars, one-line flow collections, comments, `---` between
//! documents, anchors and aliases of values, merge keys. It builds the JSON values [`super::docs_of`] returns directly, without the event
//! stream, the YAML value tree and the conversion that the full parser (`serde_yaml_ng` over
//! libyaml) costs: on a first plan of a large homelab every manifest is parsed, and that
//! parsing was most of the plan's time.
//!
//! It never decides what the full parser would decide otherwise: anything outside what it
//! knows (tags, anchors on keys, multi-line plain or quoted scalars, flow collections over
//! several lines, tabs, carriage returns but in CRLF line breaks, directives,
//! duplicate keys, keys that are not strings, a scalar whose value the full parser makes in a
//! way not ported to [`super::scalar`]) and every malformed input returns `None`, and the
//! caller parses the text with the full parser, which also locates its errors. The tests in
//! `fast/tests.rs` compare both parsers over hand-made cases and random documents.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::scalar;

/// The documents of `text` (null documents left out), or `None` when the full parser must
/// read it.
pub(super) fn docs(text: &str) -> Option<Vec<Value>> {
    if !printable(text) {
        return None;
    }
    // Windows line breaks (CRLF) are line breaks as LF is, and become LF in block scalars, as
    // libyaml reads them; a carriage return anywhere else is left to the full parser.
    let bytes = text.as_bytes();
    let crlf = memchr::memchr(b'\r', bytes).is_some();
    if crlf && memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n')) {
        return None;
    }
    let mut lines: Vec<Line> = Vec::with_capacity(text.len() / 24 + 1);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes) {
        let content_end = if crlf && end > start && bytes[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        lines.push(Line::new(text, start, content_end));
        start = end + 1;
    }
    // A last line without its line break: a block scalar ending there would lose nothing to
    // chomping that the full parser keeps, so such files are left to it.
    if start < text.len() {
        return None;
    }
    let mut out = Vec::new();
    let mut p = Parser {
        text,
        lines,
        at: 0,
        from: None,
        depth: 0,
        tabs: memchr::memchr(b'\t', text.as_bytes()).is_some(),
        start: 0,
        end: 0,
        anchors: Vec::new(),
        jumps: 0,
        merges: false,
    };
    let mut doc_start = 0;
    loop {
        let marker = (doc_start..p.lines.len()).find(|&i| p.marker(i));
        let doc_end = marker.unwrap_or(p.lines.len());
        if let Some(m) = marker {
            let line = p.line_text(m);
            match line.as_bytes() {
                [b'-', b'-', b'-', rest @ ..] => {
                    if !trailing_ok(rest) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        if let Some(v) = p.document(doc_start, doc_end)? {
            out.push(v);
        }
        match marker {
            Some(m) => doc_start = m + 1,
            None => break,
        }
    }
    Some(out)
}

/// Whether every character is one the fast path reads as the full parser does: no control
/// character but line feed and tab (a carriage return, for one, is a line break there), and
/// none of what libyaml reads as a line break, a byte order mark or not printable (C1
/// controls, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF). Multi-byte characters are otherwise
/// safe to scan byte by byte: none of their bytes is ASCII.
fn printable(text: &str) -> bool {
    let ascii_ok = |b: u8| (b >= 0x20 && b != 0x7f) || matches!(b, b'\n' | b'\t' | b'\r');
    if text.is_ascii() {
        return text.bytes().all(ascii_ok);
    }
    text.chars().all(|c| match c {
        '\0'..='\x7f' => ascii_ok(c as u8),
        '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
            false
        }
        _ => true,
    })
}

/// A line: where it starts and ends in the text (line break excluded), and its indentation.
#[derive(Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    indent: usize,
    /// Only spaces, or a comment after them.
    blank: bool,
}

impl Line {
    fn new(text: &str, start: usize, end: usize) -> Line {
        let bytes = &text.as_bytes()[start..end];
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        let blank = indent == bytes.len() || bytes[indent] == b'#';
        Line {
            start,
            end,
            indent,
            blank,
        }
    }
}

/// Whether what follows an indicator on its line (`---`, a block scalar header, a closing
/// quote or bracket) is only spaces and a comment.
fn trailing_ok(rest: &[u8]) -> bool {
    let spaces = rest.iter().take_while(|b| **b == b' ').count();
    spaces == rest.len() || (spaces > 0 && rest[spaces] == b'#')
}

/// Nesting past this is left to the full parser (which has a limit of its own).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    text: &'a str,
    lines: Vec<Line>,
    /// The line being parsed.
    at: usize,
    /// Where on line `at` the node being parsed starts, when not at its indentation: a
    /// mapping or sequence that begins after `- `.
    from: Option<usize>,
    depth: usize,
    /// Whether the text has a tab anywhere (most have none, and then no line is searched for
    /// one).
    tabs: bool,
    /// Where the current document starts and ends (line indexes).
    start: usize,
    end: usize,
    /// The anchors defined so far in the document, latest last.
    anchors: Vec<Anchor<'a>>,
    /// Alias jumps made in the document, each counted with those its anchor's node made.
    jumps: usize,
    /// Whether the document has a merge key (`<<`).
    merges: bool,
}

struct Anchor<'a> {
    name: &'a str,
    value: Value,
    /// The alias jumps made inside its node.
    jumps: usize,
}

/// An anchor's or alias's name (libyaml's: letters, digits, `-`, `_`) at the start of `s`,
/// and what follows it: a space or the end of the line, else `None`.
fn anchor_name(s: &str) -> Option<(&str, &str)> {
    let len = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        .count();
    let rest = &s[len..];
    (len > 0 && (rest.is_empty() || rest.starts_with(' '))).then_some((&s[..len], rest))
}

/// Merge keys, as `serde_yaml_ng::Value::apply_merge` applies them after parsing: top down,
/// each mapping's `<<` removed and its mapping (or each of its sequence's mappings, in
/// order) added where a key is not there yet, then the mapping's values in turn. What that
/// refuses (a scalar or sequence to merge) is left to the full parser, which says why.
fn apply_merge(root: &mut Value) -> Parsed<()> {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                match map.remove("<<") {
                    Some(Value::Object(merge)) => {
                        for (k, v) in merge {
                            map.entry(k).or_insert(v);
                        }
                    }
                    Some(Value::Array(seq)) => {
                        for item in seq {
                            let Value::Object(merge) = item else {
                                return None;
                            };
                            for (k, v) in merge {
                                map.entry(k).or_insert(v);
                            }
                        }
                    }
                    Some(_) => return None,
                    None => {}
                }
                stack.extend(map.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    Some(())
}

type Parsed<T> = Option<T>;

impl<'a> Parser<'a> {
    fn line_text(&self, i: usize) -> &'a str {
        let l = self.lines[i];
        &self.text[l.start..l.end]
    }

    /// A line that ends a document or stands for something this parser leaves alone
    /// (`...`, a directive): `---` is split on, the others make the caller give up.
    fn marker(&self, i: usize) -> bool {
        let b = self.line_text(i).as_bytes();
        b.starts_with(b"---") || b.starts_with(b"...") || b.first() == Some(&b'%')
    }

    fn document(&mut self, start: usize, end: usize) -> Parsed<Option<Value>> {
        self.at = start;
        self.start = start;
        self.end = end;
        self.from = None;
        self.anchors.clear();
        self.jumps = 0;
        self.merges = false;
        self.skip_blank();
        if self.at == self.end {
            return Some(None);
        }
        let indent = self.lines[self.at].indent;
        let mut v = self.block(indent)?;
        self.skip_blank();
        if self.at != self.end {
            return None;
        }
        if self.merges {
            apply_merge(&mut v)?;
        }
        Some((!v.is_null()).then_some(v))
    }

    fn skip_blank(&mut self) {
        while self.at < self.end && self.lines[self.at].blank {
            self.at += 1;
        }
    }

    /// The column where the node on the current line starts, and its text from there.
    fn here(&self) -> (usize, &'a str) {
        let l = self.lines[self.at];
        let col = self.from.unwrap_or(l.indent);
        (col, &self.text[l.start + col..l.end])
    }

    /// A block mapping or sequence whose first entry is on the current line, at column
    /// `indent`.
    fn block(&mut self, indent: usize) -> Parsed<Value> {
        let (_, rest) = self.here();
        if self.tabs && rest.contains('\t') {
            return None;
        }
        if is_entry(rest) {
            self.sequence(indent)
        } else if key(rest).is_some() {
            self.mapping(indent)
        } else {
            None
        }
    }

    fn nest(&mut self) -> Parsed<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// The next entry of a collection at `indent`, from the current line on: its column and
    /// text, `Some(None)` where the collection ends, `None` where the text leaves the fast
    /// path (a line indented deeper than its entries, a tab).
    fn entry(&mut self, indent: usize) -> Parsed<Option<(usize, &'a str)>> {
        if self.from.is_none() {
            self.skip_blank();
            if self.at == self.end {
                return Some(None);
            }
            let l = self.lines[self.at];
            if l.indent < indent {
                return Some(None);
            }
            if l.indent > indent {
                return None;
            }
        }
        let (col, rest) = self.here();
        if self.tabs && rest.contains('\t') {
            return None;
        }
        Some(Some((col, rest)))
    }

    fn mapping(&mut self, indent: usize) -> Parsed<Value> {
        self.nest()?;
        let mut map = Map::new();
        while let Some((_, rest)) = self.entry(indent)? {
            let (k, after) = key(rest)?;
            if map.contains_key(&*k) {
                return None;
            }
            self.merges |= k == "<<";
            self.from = None;
            let value = self.value(indent, &rest[after..])?;
            map.insert(k.into_owned(), value);
        }
        self.depth -= 1;
        Some(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize) -> Parsed<Value> {
        self.nest()?;
        let mut items = Vec::new();
        while let Some((col, rest)) = self.entry(indent)? {
            if !is_entry(rest) {
                // A key at the indentation of the sequence: the sequence was a mapping's
                // value written without indentation, and the mapping goes on.
                if self.from.is_some() {
                    return None;
                }
                break;
            }
            let spaces = rest[1..].bytes().take_while(|b| *b == b' ').count();
            let inner = &rest[1 + spaces..];
            let inner_col = col + 1 + spaces;
            self.from = None;
            let item = if inner.is_empty() || inner.starts_with('#') {
                self.at += 1;
                self.below(indent, false)?
            } else if is_entry(inner) || key(inner).is_some() {
                self.from = Some(inner_col);
                self.block(inner_col)?
            } else if inner.starts_with('&') {
                self.anchored(indent, inner, false)?
            } else {
                self.inline(indent, inner)?
            };
            items.push(item);
        }
        self.depth -= 1;
        Some(Value::Array(items))
    }

    /// The value after a key's `:` (`rest`: a space or nothing follows the `:`) in a mapping
    /// at `indent`.
    fn value(&mut self, indent: usize, rest: &'a str) -> Parsed<Value> {
        let spaces = rest.bytes().take_while(|b| *b == b' ').count();
        let inner = &rest[spaces..];
        if inner.is_empty() || inner.starts_with('#') {
            self.at += 1;
            return self.below(indent, true);
        }
        if inner.starts_with('&') {
            return self.anchored(indent, inner, true);
        }
        self.inline(indent, inner)
    }

    /// A node with an anchor (`&name`, which `inner` starts with) after an indicator in a
    /// collection at `indent`: on the same line, or below it. The anchor is defined once its
    /// node is whole, so an alias inside its own node is left to the full parser.
    fn anchored(&mut self, indent: usize, inner: &'a str, in_mapping: bool) -> Parsed<Value> {
        let (name, rest) = anchor_name(&inner[1..])?;
        let rest = rest.trim_start_matches(' ');
        let jumps_before = self.jumps;
        let v = if rest.is_empty() || rest.starts_with('#') {
            self.at += 1;
            self.below(indent, in_mapping)?
        } else if rest.starts_with(['&', '*']) {
            return None;
        } else {
            self.inline(indent, rest)?
        };
        self.anchors.push(Anchor {
            name,
            value: v.clone(),
            jumps: self.jumps - jumps_before,
        });
        Some(v)
    }

    /// The value of an alias (`*name`, which `inner` starts with), a copy of its anchor's.
    /// Its cost is bounded as the full parser bounds it (alias jumps against the document's
    /// size), with a wide margin: past that, the full parser says.
    fn alias(&mut self, inner: &'a str) -> Parsed<(Value, usize)> {
        let (name, rest) = anchor_name(&inner[1..])?;
        let anchor = self.anchors.iter().rev().find(|a| a.name == name)?;
        self.jumps += 1 + anchor.jumps;
        let lines = self.lines[self.start..self.end]
            .iter()
            .filter(|l| !l.blank)
            .count();
        if self.jumps > 10 * lines {
            return None;
        }
        Some((anchor.value.clone(), inner.len() - rest.len()))
    }

    /// The node on the lines after the current one, more indented than `indent` (or, for a
    /// mapping's value, a sequence at `indent`); null when there is none.
    fn below(&mut self, indent: usize, in_mapping: bool) -> Parsed<Value> {
        self.skip_blank();
        if self.at == self.end {
            return Some(Value::Null);
        }
        let l = self.lines[self.at];
        let rest = &self.text[l.start + l.indent..l.end];
        if l.indent > indent || (in_mapping && l.indent == indent && is_entry(rest)) {
            return self.block(l.indent);
        }
        Some(Value::Null)
    }

    /// A node that starts on the current line after an indicator, in a collection at
    /// `indent`: a scalar, a one-line flow collection or a block scalar. The current line is
    /// consumed.
    fn inline(&mut self, indent: usize, inner: &'a str) -> Parsed<Value> {
        if self.tabs && inner.contains('\t') {
            return None;
        }
        let b = inner.as_bytes();
        let v = match b[0] {
            b'|' | b'>' => return self.block_scalar(indent, inner),
            b'"' => {
                let (s, used) = double_quoted(inner)?;
                trailing_ok(&b[used..]).then_some(())?;
                Value::String(s.into_owned())
            }
            b'\'' => {
                let (s, used) = single_quoted(inner)?;
                trailing_ok(&b[used..]).then_some(())?;
                Value::String(s.into_owned())
            }
            b'[' | b'{' => {
                let mut f = Flow {
                    s: inner,
                    i: 0,
                    p: self,
                };
                let v = f.node(0)?;
                let used = f.i;
                trailing_ok(&b[used..]).then_some(())?;
                v
            }
            b'*' => {
                let (v, used) = self.alias(inner)?;
                trailing_ok(&b[used..]).then_some(())?;
                v
            }
            _ => scalar::plain(plain_block(inner)?)?,
        };
        self.at += 1;
        // A more indented line after it would continue the scalar (or be an error).
        self.skip_blank();
        if self.at < self.end && self.lines[self.at].indent > indent {
            return None;
        }
        Some(v)
    }

    /// A literal (`|`) or folded (`>`) scalar whose header is `header`, in a collection at
    /// `indent`.
    fn block_scalar(&mut self, indent: usize, header: &'a str) -> Parsed<Value> {
        let b = header.as_bytes();
        let folded = b[0] == b'>';
        let (chomp, used) = match b.get(1) {
            Some(b'-') => (Chomp::Strip, 2),
            Some(b'+') => (Chomp::Keep, 2),
            _ => (Chomp::Clip, 1),
        };
        if !trailing_ok(&b[used..]) {
            return None;
        }
        self.at += 1;
        // The content's indentation is that of its first line that is not empty.
        let first = (self.at..self.end).find(|&i| {
            let l = self.lines[i];
            l.indent < l.end - l.start
        })?;
        let content = self.lines[first].indent;
        // A tab right after the spaces that set the indentation is an error there.
        if content <= indent || self.text.as_bytes()[self.lines[first].start + content] == b'\t' {
            return None;
        }
        let mut lines: Vec<&'a str> = Vec::new();
        let mut i = self.at;
        while i < self.end {
            let l = self.lines[i];
            let len = l.end - l.start;
            if l.indent == len {
                // Empty: only spaces. More spaces than the content's indentation would be
                // content, and before the first line an error; leave both to the full parser.
                if len > content {
                    return None;
                }
                lines.push("");
            } else if l.indent >= content {
                lines.push(&self.text[l.start + content..l.end]);
            } else {
                break;
            }
            i += 1;
        }
        self.at = i;
        // Trailing empty lines are chomping's, not content.
        let trailing = lines.iter().rev().take_while(|s| s.is_empty()).count();
        let body = &lines[..lines.len() - trailing];
        let mut s = String::new();
        if folded {
            if body.iter().any(|l| l.starts_with(' ') || l.contains('\t')) {
                return None;
            }
            let mut empties = 0;
            let mut started = false;
            for l in body {
                if l.is_empty() {
                    empties += 1;
                    continue;
                }
                if started {
                    if empties == 0 {
                        s.push(' ');
                    }
                } else {
                    started = true;
                }
                for _ in 0..empties {
                    s.push('\n');
                }
                empties = 0;
                s.push_str(l);
            }
        } else {
            for (n, l) in body.iter().enumerate() {
                if n > 0 {
                    s.push('\n');
                }
                s.push_str(l);
            }
        }
        match chomp {
            Chomp::Strip => {}
            Chomp::Clip => s.push('\n'),
            Chomp::Keep => {
                s.push('\n');
                s.extend(std::iter::repeat_n('\n', trailing));
            }
        }
        self.skip_blank();
        if self.at < self.end && self.lines[self.at].indent > indent {
            return None;
        }
        Some(Value::String(s))
    }
}

#[derive(Clone, Copy)]
enum Chomp {
    Strip,
    Clip,
    Keep,
}

/// Whether `rest` (a line from its node's column) is a sequence entry: `-` then a space or
/// the end of the line.
fn is_entry(rest: &str) -> bool {
    let b = rest.as_bytes();
    b.first() == Some(&b'-') && matches!(b.get(1), None | Some(b' '))
}

/// The key that `rest` starts with, and where its value starts (after the `:`), if `rest`
/// is `key: ...` or `key:` with a string key the fast path takes.
fn key(rest: &str) -> Option<(Cow<'_, str>, usize)> {
    let b = rest.as_bytes();
    let (k, after_key) = match b.first()? {
        b'"' => double_quoted(rest)?,
        b'\'' => single_quoted(rest)?,
        c if starts_plain(*c, b.get(1).copied()) => {
            let colon = colon(rest)?;
            let k = rest[..colon].trim_end_matches(' ');
            if k.len() > 1000 || k.contains(" #") {
                return None;
            }
            match scalar::resolve(k)? {
                scalar::Resolved::Str => (Cow::Borrowed(k), colon),
                scalar::Resolved::Value(_) => return None,
            }
        }
        _ => return None,
    };
    let spaces = b[after_key..].iter().take_while(|c| **c == b' ').count();
    let at = after_key + spaces;
    if b.get(at) != Some(&b':') || !matches!(b.get(at + 1), None | Some(b' ')) {
        return None;
    }
    Some((k, at + 1))
}

/// Where the `:` of a plain key is: the first `:` followed by a space or the end of the line,
/// when no comment starts before it.
fn colon(rest: &str) -> Option<usize> {
    let b = rest.as_bytes();
    for i in 0..b.len() {
        match b[i] {
            b':' if matches!(b.get(i + 1), None | Some(b' ')) => return Some(i),
            b'#' if i > 0 && b[i - 1] == b' ' => return None,
            _ => {}
        }
    }
    None
}

/// Whether a plain scalar may start with `c` (followed by `next`) in block context. The
/// indicators that may start one when a non-space follows (`-`, `?`, `:`) are taken only for
/// `-`, which numbers and flags need.
fn starts_plain(c: u8, next: Option<u8>) -> bool {
    match c {
        b'-' => next.is_some_and(|n| n.is_ascii_alphanumeric() || matches!(n, b'-' | b'.')),
        b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|'
        | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' => false,
        _ => true,
    }
}

/// A plain scalar in block context that fills the rest of its line (up to a comment), or
/// `None` if it is not one the fast path takes.
fn plain_block(inner: &str) -> Option<&str> {
    let b = inner.as_bytes();
    if !starts_plain(b[0], b.get(1).copied()) {
        return None;
    }
    let mut end = b.len();
    for i in 0..b.len() {
        match b[i] {
            b'#' if b[i - 1] == b' ' => {
                end = i;
                break;
            }
            b':' if matches!(b.get(i + 1), None | Some(b' ')) => return None,
            _ => {}
        }
    }
    Some(inner[..end].trim_end_matches(' '))
}

/// A single-quoted scalar on one line at the start of `s`: its value and the bytes it took.
fn single_quoted(s: &str) -> Option<(Cow<'_, str>, usize)> {
    let b = s.as_bytes();
    // Without escapes, the text itself (most keys and values are).
    if let Some(end) = memchr::memchr(b'\'', &b[1..]).map(|i| i + 1) {
        if b.get(end + 1) != Some(&b'\'') {
            return Some((Cow::Borrowed(&s[1..end]), end + 1));
        }
    }
    let mut out = String::new();
    let mut i = 1;
    let mut run = 1;
    loop {
        match b.get(i)? {
            b'\'' if b.get(i + 1) == Some(&b'\'') => {
                out.push_str(&s[run..=i]);
                i += 2;
                run = i;
            }
            b'\'' => {
                out.push_str(&s[run..i]);
                return Some((Cow::Owned(out), i + 1));
            }
            _ => i += 1,
        }
    }
}

/// A double-quoted scalar on one line at the start of `s`, with the escapes homelab files
/// use; any other escape, and a line break inside, is left to the full parser.
fn double_quoted(s: &str) -> Option<(Cow<'_, str>, usize)> {
    let b = s.as_bytes();
    if let Some(end) = memchr::memchr2(b'"', b'\\', &b[1..]).map(|i| i + 1) {
        if b[end] == b'"' {
            return Some((Cow::Borrowed(&s[1..end]), end + 1));
        }
    }
    let mut out = String::new();
    let mut i = 1;
    let mut run = 1;
    loop {
        match b.get(i)? {
            b'"' => {
                out.push_str(&s[run..i]);
                return Some((Cow::Owned(out), i + 1));
            }
            b'\\' => {
                out.push_str(&s[run..i]);
                let (c, used) = match b.get(i + 1)? {
                    b'\\' => ('\\', 2),
                    b'"' => ('"', 2),
                    b'/' => ('/', 2),
                    b'n' => ('\n', 2),
                    b't' => ('\t', 2),
                    b'r' => ('\r', 2),
                    b'0' => ('\0', 2),
                    b'a' => ('\x07', 2),
                    b'b' => ('\x08', 2),
                    b'e' => ('\x1b', 2),
                    b'f' => ('\x0c', 2),
                    b'v' => ('\x0b', 2),
                    b' ' => (' ', 2),
                    b'x' => (hex(s.get(i + 2..i + 4)?)?, 4),
                    b'u' => (hex(s.get(i + 2..i + 6)?)?, 6),
                    b'U' => (hex(s.get(i + 2..i + 10)?)?, 10),
                    _ => return None,
                };
                out.push(c);
                i += used;
                run = i;
            }
            _ => i += 1,
        }
    }
}

fn hex(digits: &str) -> Option<char> {
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(digits, 16).ok()?)
}

/// A flow collection on one line: `[a, b]`, `{k: v}`, nested, with plain and quoted
/// scalars and aliases. No empty entries, no trailing comma, no `?`, no single-pair mappings
/// in a sequence.
struct Flow<'f, 'a> {
    s: &'a str,
    i: usize,
    p: &'f mut Parser<'a>,
}

impl Flow<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    /// The entries of the collection whose opening bracket is at the cursor, each read by
    /// `entry`, separated by `,` up to `close`.
    fn entries(&mut self, close: u8, mut entry: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.i += 1;
        self.spaces();
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            entry(self)?;
            self.spaces();
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn node(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.spaces();
        match self.peek()? {
            b'[' => {
                let mut items = Vec::new();
                self.entries(b']', |f| {
                    items.push(f.node(depth + 1)?);
                    Some(())
                })?;
                Some(Value::Array(items))
            }
            b'{' => {
                let mut map = Map::new();
                self.entries(b'}', |f| {
                    f.spaces();
                    let Value::String(k) = f.scalar()? else {
                        return None;
                    };
                    f.spaces();
                    if f.peek()? != b':' || f.s.as_bytes().get(f.i + 1) != Some(&b' ') {
                        return None;
                    }
                    f.i += 1;
                    let v = f.node(depth + 1)?;
                    f.p.merges |= k == "<<";
                    map.insert(k, v).is_none().then_some(())
                })?;
                Some(Value::Object(map))
            }
            _ => self.scalar(),
        }
    }

    /// A scalar in flow context: quoted, or plain up to `,`, `[`, `]`, `{`, `}` or `: ` (no
    /// other `:` and no `#` inside, so that nothing here is read otherwise by the full
    /// parser).
    fn scalar(&mut self) -> Option<Value> {
        let rest = &self.s[self.i..];
        match rest.as_bytes().first()? {
            b'"' => {
                let (s, used) = double_quoted(rest)?;
                self.i += used;
                Some(Value::String(s.into_owned()))
            }
            b'\'' => {
                let (s, used) = single_quoted(rest)?;
                self.i += used;
                Some(Value::String(s.into_owned()))
            }
            b'*' => {
                // The name ends at a space, or at what ends a flow entry.
                let end = rest.find([' ', ',', ']', '}']).unwrap_or(rest.len());
                let (v, _) = self.p.alias(&rest[..end])?;
                self.i += end;
                Some(v)
            }
            c if starts_plain(*c, rest.as_bytes().get(1).copied()) => {
                let b = rest.as_bytes();
                let mut len = 0;
                loop {
                    match *b.get(len)? {
                        b',' | b']' | b'}' | b'[' | b'{' => break,
                        // `: ` ends a key; the caller refuses it anywhere else.
                        b':' if b.get(len + 1) == Some(&b' ') => break,
                        b':' | b'#' => return None,
                        _ => len += 1,
                    }
                }
                self.i += len;
                scalar::plain(rest[..len].trim_end_matches(' '))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
