//! The config file's syntax: the part of TOML that a file of plain keys needs.
//!
//! portico's keys are top-level names whose values are strings, whole numbers, booleans and
//! lists of strings. This reads `key = value` lines, comments, one-line strings (basic and
//! literal), integers, booleans and lists, and refuses the rest of TOML (tables, dotted or
//! quoted keys, floats, dates, multi-line strings, inline tables) by name. What it accepts
//! is TOML and means the same there: a test holds it to the `toml` crate. Reading the file
//! with that crate instead cost 61 KB of the aarch64 binary's 1 MiB budget.

use std::collections::HashMap;
use std::fmt;

/// A value as the file wrote it, before a key checks it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    String(String),
    Integer(i64),
    Boolean(bool),
    Array(Vec<Value>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "string {s:?}"),
            Value::Integer(n) => write!(f, "integer {n}"),
            Value::Boolean(b) => write!(f, "boolean {b}"),
            Value::Array(_) => f.write_str("a list"),
        }
    }
}

/// One `key = value` line; `line` counts from 1.
#[derive(Debug, PartialEq)]
pub(super) struct Entry {
    pub line: usize,
    pub key: String,
    pub value: Value,
}

/// What is wrong, and on which line (from 1).
#[derive(Debug)]
pub(super) struct SyntaxError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Lists nest no deeper than this, so that a file of `[[[[…` cannot exhaust the stack.
const MAX_NESTING: usize = 8;

const VALUE_FORMS: &str = "a string in quotes, a whole number, true, false or a list in [ ]";

/// Reads a whole file; keys come out in the file's order, each once.
pub(super) fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut parser = Parser { rest: text, line: 1 };
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines_of_keys = HashMap::new();
    loop {
        parser.skip_blank_lines()?;
        if parser.rest.is_empty() {
            return Ok(entries);
        }
        let line = parser.line;
        let key = parser.key()?;
        if let Some(first) = lines_of_keys.insert(key.clone(), line) {
            return Err(parser.error(format!("`{key}` is set twice, here and on line {first}")));
        }
        parser.skip_spaces();
        if !parser.eat('=') {
            return Err(parser.error(format!("expected `=` after `{key}`")));
        }
        parser.skip_spaces();
        let value = parser.value(0)?;
        parser.skip_spaces();
        parser.skip_comment()?;
        if !parser.rest.is_empty() && !parser.newline() {
            return Err(parser.error(format!("expected the end of the line after the value of `{key}`")));
        }
        entries.push(Entry { line, key, value });
    }
}

struct Parser<'a> {
    rest: &'a str,
    line: usize,
}

impl Parser<'_> {
    fn error(&self, message: String) -> SyntaxError {
        SyntaxError { line: self.line, message }
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Takes the longest prefix whose characters all match.
    fn take_while(&mut self, matches: impl Fn(char) -> bool) -> &str {
        let end = self.rest.find(|c| !matches(c)).unwrap_or(self.rest.len());
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    fn skip_spaces(&mut self) {
        self.take_while(|c| c == ' ' || c == '\t');
    }

    fn newline(&mut self) -> bool {
        let found = self.eat('\n') || self.rest.starts_with("\r\n") && self.eat('\r') && self.eat('\n');
        self.line += usize::from(found);
        found
    }

    fn skip_comment(&mut self) -> Result<(), SyntaxError> {
        if self.eat('#') {
            let comment = self.take_while(|c| c != '\n' && c != '\r');
            if comment.chars().any(is_control) {
                return Err(self.error("a control character in a comment".into()));
            }
        }
        Ok(())
    }

    /// Spaces, comments and line ends, up to the next key or the end of the file.
    fn skip_blank_lines(&mut self) -> Result<(), SyntaxError> {
        loop {
            self.skip_spaces();
            self.skip_comment()?;
            if !self.newline() {
                return Ok(());
            }
        }
    }

    fn key(&mut self) -> Result<String, SyntaxError> {
        let key = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-').to_owned();
        if key.is_empty() {
            return Err(self.error(match self.peek() {
                Some('[') => "portico's config has no [sections]: every key goes at the top level, \
                              as in the shipped /etc/portico/portico.toml"
                    .into(),
                Some('"' | '\'') => "write key names without quotes, such as drain_timeout".into(),
                _ => "expected a key name such as drain_timeout".into(),
            }));
        }
        self.skip_spaces();
        if self.peek() == Some('.') {
            return Err(
                self.error(format!("`{key}.…`: portico's keys have no dots; every key is a plain name"))
            );
        }
        Ok(key)
    }

    fn value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        match self.peek() {
            Some('"' | '\'') if self.rest.starts_with("\"\"\"") || self.rest.starts_with("'''") => {
                Err(self.error("multi-line strings are not read here: write the value on one line".into()))
            }
            Some('"') => self.basic_string().map(Value::String),
            Some('\'') => self.literal_string().map(Value::String),
            Some('[') => self.array(depth + 1),
            Some('{') => Err(self.error("inline tables ({ … }) are not used by any key".into())),
            Some(c) if c.is_ascii_alphanumeric() || c == '+' || c == '-' => {
                let word = self.take_while(|c| c.is_ascii_alphanumeric() || "+-_.:".contains(c));
                match word {
                    "true" => Ok(Value::Boolean(true)),
                    "false" => Ok(Value::Boolean(false)),
                    _ => integer(word).map(Value::Integer).map_err(|message| self.error(message)),
                }
            }
            _ => Err(self.error(format!("expected a value: {VALUE_FORMS}"))),
        }
    }

    fn basic_string(&mut self) -> Result<String, SyntaxError> {
        self.eat('"');
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("a string is not closed: end it with \" on the same line".into()));
            };
            self.rest = &self.rest[c.len_utf8()..];
            match c {
                '"' => return Ok(text),
                '\\' => text.push(self.escape()?),
                '\n' | '\r' => {
                    return Err(self.error("a string is not closed: end it with \" on the same line".into()));
                }
                c if is_control(c) => {
                    return Err(self.error("a control character in a string: write it as \\uXXXX".into()));
                }
                c => text.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char, SyntaxError> {
        let escaped = match self.peek() {
            Some('b') => '\u{8}',
            Some('t') => '\t',
            Some('n') => '\n',
            Some('f') => '\u{c}',
            Some('r') => '\r',
            Some('"') => '"',
            Some('\\') => '\\',
            Some(u @ ('u' | 'U')) => {
                let digits = if u == 'u' { 4 } else { 8 };
                let hex =
                    self.rest.get(1..1 + digits).filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
                let c = hex.and_then(|hex| u32::from_str_radix(hex, 16).ok()).and_then(char::from_u32);
                let Some(c) = c else {
                    return Err(
                        self.error(format!("\\{u} takes {digits} hex digits naming a Unicode character"))
                    );
                };
                self.rest = &self.rest[1 + digits..];
                return Ok(c);
            }
            _ => {
                return Err(
                    self.error("unknown escape: a string knows \\\" \\\\ \\n \\t \\r \\b \\f \\uXXXX".into())
                );
            }
        };
        self.rest = &self.rest[1..];
        Ok(escaped)
    }

    fn literal_string(&mut self) -> Result<String, SyntaxError> {
        self.eat('\'');
        let text = self.take_while(|c| c != '\'' && c != '\n' && c != '\r').to_owned();
        if !self.eat('\'') {
            return Err(self.error("a string is not closed: end it with ' on the same line".into()));
        }
        if text.chars().any(is_control) {
            return Err(self.error("a control character in a string".into()));
        }
        Ok(text)
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_NESTING {
            return Err(self.error(format!("lists nest more than {MAX_NESTING} deep")));
        }
        self.eat('[');
        let mut items = Vec::new();
        loop {
            self.skip_blank_lines()?;
            if self.eat(']') {
                return Ok(Value::Array(items));
            }
            items.push(self.value(depth)?);
            self.skip_blank_lines()?;
            if self.eat(']') {
                return Ok(Value::Array(items));
            }
            if !self.eat(',') {
                return Err(self.error("expected `,` or `]` after an item of a list".into()));
            }
        }
    }
}

/// TOML's control characters: all but tab, which strings and comments may hold.
fn is_control(c: char) -> bool {
    c != '\t' && (c <= '\u{1f}' || c == '\u{7f}')
}

/// An integer as TOML writes it: decimal with an optional sign, or 0x, 0o, 0b; `_` only
/// between digits; no leading zero.
fn integer(word: &str) -> Result<i64, String> {
    let not_a_number = || {
        let body = word.trim_start_matches(['+', '-']);
        let float_or_date = matches!(body, "inf" | "nan")
            || body.starts_with(|c: char| c.is_ascii_digit()) && body.contains(['.', ':', 'e', 'E', '-']);
        match float_or_date {
            true => format!(
                "{word}: floats and dates are not used by any key; durations are strings such as \"1500ms\""
            ),
            false => format!("{word} is not a value: {VALUE_FORMS}"),
        }
    };
    let (radix, digits) = match word.get(..2) {
        Some("0x") => (16, &word[2..]),
        Some("0o") => (8, &word[2..]),
        Some("0b") => (2, &word[2..]),
        _ => (10, word),
    };
    let unsigned = match radix {
        10 => digits.strip_prefix(['+', '-']).unwrap_or(digits),
        _ => digits,
    };
    let well_formed = !unsigned.is_empty()
        && !unsigned.starts_with('_')
        && !unsigned.ends_with('_')
        && !unsigned.contains("__")
        && unsigned.chars().all(|c| c == '_' || c.is_digit(radix))
        && !(radix == 10 && unsigned.len() > 1 && unsigned.starts_with('0'));
    if !well_formed {
        return Err(not_a_number());
    }
    i64::from_str_radix(&digits.replace('_', ""), radix).map_err(|_| format!("{word} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, Value)> {
        parse(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(entries) => panic!("{text:?} parsed: {entries:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn reads_strings_numbers_booleans_and_lists() {
        let text = "# comment\r\n\
                    \n\
                    a = \"x\\ty \\\"q\\\" \\u00e9\\U0001F600\" # trailing\n\
                    b-2 = 'C:\\path'\n\
                    c = -1_000\n\
                    d = 0x1F\n\
                    e = true\n\
                    f=false\n\
                    listen = [\n  \"127.0.0.1:80\", # one\n  'https://[::]:443',\n]\n\
                    g = []\n\
                    h = [[1], [\"a\"]]";
        assert_eq!(
            values(text),
            [
                ("a".into(), s("x\ty \"q\" é😀")),
                ("b-2".into(), s("C:\\path")),
                ("c".into(), Value::Integer(-1000)),
                ("d".into(), Value::Integer(31)),
                ("e".into(), Value::Boolean(true)),
                ("f".into(), Value::Boolean(false)),
                ("listen".into(), Value::Array(vec![s("127.0.0.1:80"), s("https://[::]:443")])),
                ("g".into(), Value::Array(vec![])),
                (
                    "h".into(),
                    Value::Array(vec![Value::Array(vec![Value::Integer(1)]), Value::Array(vec![s("a")])])
                ),
            ]
        );
        assert_eq!(parse("").unwrap(), []);
        assert_eq!(parse("\n# only a comment").unwrap(), []);
    }

    #[test]
    fn errors_name_the_line() {
        let err = error("a = 1\n\n b = \"open\n");
        assert!(err.starts_with("line 3: a string is not closed"), "{err}");
        let err = error("listen = [\n\"a\"\n\"b\"]");
        assert!(err.starts_with("line 3: expected `,` or `]`"), "{err}");
    }

    #[test]
    fn refuses_the_rest_of_toml_by_name() {
        for (text, says) in [
            ("[server]\nport = 1", "no [sections]"),
            ("[[x]]", "no [sections]"),
            ("a.b = 1", "no dots"),
            ("\"a\" = 1", "without quotes"),
            ("a = 1.5", "floats and dates"),
            ("a = 1e3", "floats and dates"),
            ("a = inf", "floats and dates"),
            ("a = info", "not a value"),
            ("a = 1979-05-27", "floats and dates"),
            ("a = 07:32:00", "floats and dates"),
            ("a = \"\"\"x\"\"\"", "multi-line strings"),
            ("a = '''x'''", "multi-line strings"),
            ("a = { b = 1 }", "inline tables"),
        ] {
            let err = error(text);
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        for text in [
            "a",
            "a =",
            "a = 1 2",
            "a = 1\na = 2",
            "= 1",
            "a = \"\\x\"",
            "a = \"\\u12\"",
            "a = \"\\uD800\"",
            "a = \"bell\u{7}\"",
            "# bell\u{7}",
            "a = 'open",
            "a = 012",
            "a = 1__0",
            "a = _1",
            "a = 1_",
            "a = +0x1",
            "a = 0x",
            "a = 9223372036854775808",
            "a = [1,,2]",
            "a = [,]",
            "a = [1",
            "a = True",
            "a = truex",
            "a = 1\rb = 2",
            "é = 1",
        ] {
            error(text);
        }
        let deep = format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(error(&deep).contains("nest more than"));
    }

    /// Every file this accepts, the `toml` crate accepts with the same values: checked on
    /// every one-character edit of a file that uses each form.
    #[test]
    fn accepts_only_what_toml_accepts_and_means_the_same() {
        fn same(ours: &Value, theirs: &toml::Value) -> bool {
            match (ours, theirs) {
                (Value::String(a), toml::Value::String(b)) => a == b,
                (Value::Integer(a), toml::Value::Integer(b)) => a == b,
                (Value::Boolean(a), toml::Value::Boolean(b)) => a == b,
                (Value::Array(a), toml::Value::Array(b)) => {
                    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
                }
                _ => false,
            }
        }
        let base = "# c\nlisten = [\"a\\u0041\", 'b', [0x1_F, 0o7, 0b10, +5]] # d\r\nk_-1 = -1_2\nt = true\n\
                    s = \"\\\\\\\"\"\nn = 0\n";
        let edits = "\"'[],=#\n\r\\ .0a1_-+x{}\tue";
        assert_eq!(parse(base).unwrap().len(), 5);
        let mut documents = vec![base.to_owned()];
        for (at, _) in base.char_indices().chain([(base.len(), ' ')]) {
            let next = base[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            documents.push(format!("{}{}", &base[..at], &base[next..]));
            for c in edits.chars() {
                documents.push(format!("{}{c}{}", &base[..at], &base[at..]));
                documents.push(format!("{}{c}{}", &base[..at], &base[next..]));
            }
        }
        let mut accepted = 0;
        for document in &documents {
            let Ok(ours) = parse(document) else { continue };
            accepted += 1;
            let theirs: toml::Table = toml::from_str(document)
                .unwrap_or_else(|e| panic!("we accept {document:?}, toml does not: {e}"));
            assert_eq!(ours.len(), theirs.len(), "{document:?}");
            for entry in &ours {
                assert!(
                    theirs.get(&entry.key).is_some_and(|theirs| same(&entry.value, theirs)),
                    "{document:?}: {} = {:?}, toml says {:?}",
                    entry.key,
                    entry.value,
                    theirs.get(&entry.key)
                );
            }
        }
        // A parser that refused everything would pass the loop: most edits keep a valid file.
        assert!(accepted > documents.len() / 4, "accepted {accepted} of {}", documents.len());
    }
}
