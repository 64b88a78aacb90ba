//! Strict JSON for untrusted input: objects only at the top, duplicate member names rejected
//! (RFC 7519 §4 lets us choose; accepting them lets two parsers disagree about a claim), nesting bounded.
//!
//! One hand-written reader for every JSON document the verifier and the service read (token headers
//! and payloads, request bodies, key sets), for two reasons. Those rules belong in the reader itself:
//! a duplicate is refused where it is read and depth is bounded by the recursion it would cost. And
//! size: in place of serde_json's deserializer (serde's visitor machinery, its reader, number and
//! error code), it took about 13 KB off the WebAssembly component, which has a size budget.
//! serde_json stays for its data types ([`Value`], [`Map`], [`Number`]: `Claims` is a `Map`) and for
//! writing JSON.
//!
//! It reads RFC 8259 exactly and accepts what serde_json accepts, to the same values (the tests
//! check both against serde_json), except duplicate member names, which serde_json takes (the last
//! wins) and this reader refuses, and nesting: the caller's bound, never more than [`MAX_DEPTH`].
//! Errors are short descriptions with a byte offset; they never quote the input.

use serde_json::map::Entry;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;

/// The deepest nesting read whatever a caller asks (the reader recurses once per level, so this is
/// what bounds its stack). serde_json's own limit, which this replaces, was about the same (127).
pub const MAX_DEPTH: usize = 128;

/// Parses `bytes` as one JSON object. The error is a short human description.
pub fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, String> {
    parse_object_observing(bytes, max_depth, &mut |_, _| {})
}

/// Parses `bytes` as one JSON value of any kind, under the same rules as [`parse_object`].
pub fn parse_value(bytes: &[u8], max_depth: usize) -> Result<Value, String> {
    let mut r = Reader::new(bytes)?;
    let value = r.value(max_depth)?;
    r.end()?;
    Ok(value)
}

/// What a JSON object holds under one member name (see [`find_member`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    Absent,
    Null,
    /// Borrowed from the input when it holds no escape.
    Str(Cow<'a, str>),
    /// Any other kind of value.
    Other,
}

/// The member `wanted` of the JSON object `bytes`, which is read and checked whole by the rules of
/// [`parse_object`] (duplicates refused, depth bounded) but not kept: for a caller that needs one
/// string of a document (the token of a request body) and would otherwise build, copy and drop a map.
pub fn find_member<'a>(
    bytes: &'a [u8],
    wanted: &str,
    max_depth: usize,
) -> Result<Found<'a>, String> {
    let mut found = Found::Absent;
    // The other names, only to refuse duplicates among them too; usually empty, never allocating.
    let mut others = Map::new();
    read_object(bytes, max_depth, &mut |r, name, depth_left| {
        if name != wanted {
            if others.insert(name.into_owned(), Value::Null).is_some() {
                return Err(r.duplicate());
            }
            r.value(depth_left)?;
            return Ok(());
        }
        if found != Found::Absent {
            return Err(r.duplicate());
        }
        r.skip_whitespace();
        let null = r.peek() == Some(b'n');
        found = match r.string_or_other(depth_left)? {
            Some(s) => Found::Str(s),
            None if null => Found::Null,
            None => Found::Other,
        };
        Ok(())
    })?;
    Ok(found)
}

/// Sees each top-level member of an object as it is read.
pub(crate) type Observer<'a> = dyn FnMut(&str, &Value) + 'a;

/// [`parse_object`] that also shows each top-level member to `observe` as it is read, so a caller can
/// note what it needs (the time claims) without looking members up again afterwards.
pub(crate) fn parse_object_observing(
    bytes: &[u8],
    max_depth: usize,
    observe: &mut Observer<'_>,
) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    read_object(bytes, max_depth, &mut |r, name, depth_left| {
        r.member(&mut map, name, depth_left, Some(&mut *observe))
    })?;
    Ok(map)
}

/// Called for each member of an object with the reader (positioned at the member's value, which it
/// must read), the member's name and the depth left for the value.
pub(crate) type MemberFn<'a, 'f> =
    dyn FnMut(&mut Reader<'a>, Cow<'a, str>, usize) -> Result<(), String> + 'f;

/// Reads `bytes` as one JSON object, handing each member to `member`: for a caller that keeps only
/// some members (the header) and builds no map. `member` is responsible for refusing duplicates
/// ([`Reader::duplicate`] makes the error).
pub(crate) fn read_object<'a>(
    bytes: &'a [u8],
    max_depth: usize,
    member: &mut MemberFn<'a, '_>,
) -> Result<(), String> {
    let mut r = Reader::new(bytes)?;
    r.skip_whitespace();
    if r.peek() != Some(b'{') {
        return Err(r.fail("expected a JSON object"));
    }
    r.object(max_depth, member)?;
    r.end()
}

/// A position in a JSON document being read. A method that fails returns a description of the first
/// problem with its byte offset. Nothing here panics (no indexing, no unwrap), recursion is one level
/// per container, bounded by the depth, and each byte is looked at a bounded number of times (the
/// maps' own lookups aside).
pub(crate) struct Reader<'a> {
    /// The whole document, checked to be UTF-8 once so strings can be borrowed from it.
    text: &'a str,
    pos: usize,
    /// Where the name of the member being read starts, for [`Reader::duplicate`].
    name_at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, String> {
        // JSON outside strings is ASCII, so refusing invalid UTF-8 anywhere up front is what a
        // byte-by-byte check would refuse too, and it lets strings be slices of the input.
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Reader {
                text,
                pos: 0,
                name_at: 0,
            }),
            Err(e) => Err(at("invalid UTF-8", e.valid_up_to())),
        }
    }

    #[cold]
    fn fail(&self, what: &str) -> String {
        at(what, self.pos)
    }

    /// The error for a member whose name the object already had.
    #[cold]
    pub(crate) fn duplicate(&self) -> String {
        at("duplicate member name", self.name_at)
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Consumes `byte` when it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        if next {
            self.pos += 1;
        }
        next
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The input from `from` to the current position. Only ever cut next to ASCII bytes, so on
    /// character boundaries; the empty fallback cannot happen.
    fn since(&self, from: usize) -> &'a str {
        let text: &'a str = self.text;
        text.get(from..self.pos).unwrap_or_default()
    }

    /// Nothing but whitespace is left.
    fn end(&mut self) -> Result<(), String> {
        self.skip_whitespace();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.fail("trailing characters")),
        }
    }

    /// The depth left inside a container entered with `depth_left`, or the error when there is none.
    fn enter(&self, depth_left: usize) -> Result<usize, String> {
        depth_left
            .min(MAX_DEPTH)
            .checked_sub(1)
            .ok_or_else(|| self.fail("JSON nested too deeply"))
    }

    /// Any value, after optional whitespace.
    pub(crate) fn value(&mut self, depth_left: usize) -> Result<Value, String> {
        self.skip_whitespace();
        Ok(match self.peek() {
            Some(b'{') => {
                let mut map = Map::new();
                self.object(depth_left, &mut |r, name, inner| {
                    r.member(&mut map, name, inner, None)
                })?;
                Value::Object(map)
            }
            Some(b'[') => {
                let inner = self.enter(depth_left)?;
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_whitespace();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(inner)?);
                        self.skip_whitespace();
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(self.fail("expected ',' or ']'"));
                        }
                    }
                }
                Value::Array(items)
            }
            Some(b'"') => {
                self.pos += 1;
                Value::String(self.string()?.into_owned())
            }
            Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            Some(_) => return Err(self.fail("expected a value")),
            None => return Err(self.fail("unexpected end of input")),
        })
    }

    /// A value of which only a string is of interest: the string (borrowed from the input when it
    /// holds no escape), or `None` for any other value, which is read and checked all the same.
    pub(crate) fn string_or_other(
        &mut self,
        depth_left: usize,
    ) -> Result<Option<Cow<'a, str>>, String> {
        self.skip_whitespace();
        if self.eat(b'"') {
            self.string().map(Some)
        } else {
            self.value(depth_left).map(|_| None)
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        let end = self.pos.saturating_add(word.len());
        if self.text.as_bytes().get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(value)
        } else {
            Err(self.fail("expected a value"))
        }
    }

    /// An object whose `{` is next: each member goes to `member` (see [`MemberFn`]).
    fn object(&mut self, depth_left: usize, member: &mut MemberFn<'a, '_>) -> Result<(), String> {
        let inner = self.enter(depth_left)?;
        self.pos += 1;
        self.skip_whitespace();
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            self.name_at = self.pos;
            if !self.eat(b'"') {
                return Err(self.fail("expected a member name"));
            }
            let name = self.string()?;
            self.skip_whitespace();
            if !self.eat(b':') {
                return Err(self.fail("expected ':'"));
            }
            member(self, name, inner)?;
            self.skip_whitespace();
            if self.eat(b'}') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(self.fail("expected ',' or '}'"));
            }
        }
    }

    /// Adds the member `name` to `map` (and shows it to `observe`), reading its value; a name already
    /// in `map` is refused.
    fn member(
        &mut self,
        map: &mut Map<String, Value>,
        name: Cow<'a, str>,
        depth_left: usize,
        observe: Option<&mut Observer<'_>>,
    ) -> Result<(), String> {
        // One search per member: the vacant entry remembers where the value goes.
        match map.entry(name.into_owned()) {
            Entry::Occupied(_) => Err(self.duplicate()),
            Entry::Vacant(e) => {
                let value = self.value(depth_left)?;
                if let Some(observe) = observe {
                    observe(e.key(), &value);
                }
                e.insert(value);
                Ok(())
            }
        }
    }

    /// The rest of a string whose opening quote was just read: borrowed from the input when it holds
    /// no escape.
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        let mut owned: Option<String> = None;
        let mut run = self.pos;
        loop {
            self.skip_plain();
            match self.peek() {
                Some(b'"') => {
                    let tail = self.since(run);
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                Some(b'\\') => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(self.since(run));
                    self.pos += 1;
                    let c = self.escape()?;
                    s.push(c);
                    run = self.pos;
                }
                Some(0..=0x1f) => return Err(self.fail("control character in string")),
                Some(_) => self.pos += 1,
                None => return Err(self.fail("unterminated string")),
            }
        }
    }

    /// Skips ahead, eight bytes at a time, to the next byte a string gives meaning to (`"`, `\` or a
    /// control character), as serde_json does: reading strings byte by byte costs a fifth more for a
    /// usual payload, and more for key material. Fewer than eight bytes before the end of the input
    /// are left to the caller.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
        let mut plain = 0;
        for word in rest.chunks_exact(8) {
            let Ok(word) = <[u8; 8]>::try_from(word) else {
                break;
            };
            let x = u64::from_le_bytes(word);
            let quote = x ^ (ONES * u64::from(b'"'));
            let backslash = x ^ (ONES * u64::from(b'\\'));
            // The high bit of each byte that is zero, resp. less than 0x20: exact for the first such
            // byte (a borrow can only mark bytes after it), which is the one wanted.
            let zero = |v: u64| v.wrapping_sub(ONES) & !v;
            let found = (zero(quote) | zero(backslash) | (x.wrapping_sub(ONES * 0x20) & !x)) & HIGH;
            if found != 0 {
                plain += (found.trailing_zeros() / 8) as usize;
                break;
            }
            plain += 8;
        }
        self.pos += plain;
    }

    /// The character of an escape whose `\` was just read.
    fn escape(&mut self) -> Result<char, String> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let first = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&first) {
                    // A leading surrogate: only the trailing one of a pair may follow.
                    if !(self.eat(b'\\') && self.eat(b'u')) {
                        return Err(self.fail("lone surrogate in escape"));
                    }
                    let second = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err(self.fail("lone surrogate in escape"));
                    }
                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                } else {
                    first
                };
                // Only a lone trailing surrogate is not a character here.
                return char::from_u32(code).ok_or_else(|| self.fail("lone surrogate in escape"));
            }
            _ => return Err(self.fail("invalid escape")),
        };
        self.pos += 1;
        Ok(c)
    }

    /// The four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Result<u32, String> {
        let mut code = 0;
        for _ in 0..4 {
            match self.peek().and_then(|b| char::from(b).to_digit(16)) {
                Some(d) => code = code * 16 + d,
                None => return Err(self.fail("invalid \\u escape")),
            }
            self.pos += 1;
        }
        Ok(code)
    }

    /// A number, as serde_json reads it: an integer into `u64` (`i64` when negative) when it fits,
    /// anything else into `f64`, which must be finite.
    fn number(&mut self) -> Result<Number, String> {
        let start = self.pos;
        let negative = self.eat(b'-');
        let int_start = self.pos;
        // The integer part's value as long as it fits.
        let mut int = Some(0u64);
        while let Some(d @ b'0'..=b'9') = self.peek() {
            int = int
                .and_then(|n| n.checked_mul(10))
                .and_then(|n| n.checked_add(u64::from(d - b'0')));
            self.pos += 1;
        }
        let int_digits = self.pos - int_start;
        if int_digits == 0 {
            return Err(self.fail("invalid number"));
        }
        if int_digits > 1 && self.text.as_bytes().get(int_start) == Some(&b'0') {
            return Err(at("invalid number (leading zero)", int_start));
        }
        let mut integer = true;
        if self.eat(b'.') {
            integer = false;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits()?;
        }
        if integer {
            match (negative, int) {
                (false, Some(n)) => return Ok(Number::from(n)),
                // `-0` is a float, as in serde_json.
                (true, Some(n)) if n != 0 => {
                    if let Some(n) = 0i64.checked_sub_unsigned(n) {
                        return Ok(Number::from(n));
                    }
                }
                _ => {}
            }
        }
        // The text is JSON's number grammar, which `f64`'s parser accepts; it rounds correctly.
        let float = self.since(start).parse::<f64>().ok();
        float
            .and_then(Number::from_f64)
            .ok_or_else(|| at("number out of range", start))
    }

    /// One or more decimal digits.
    fn digits(&mut self) -> Result<(), String> {
        let from = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        if self.pos == from {
            return Err(self.fail("invalid number"));
        }
        Ok(())
    }
}

/// The one place an error message is built.
#[cold]
fn at(what: &str, pos: usize) -> String {
    format!("{what} at byte {pos}")
}

#[cfg(test)]
mod tests;
