//! The YAML of the integrations file, read and written here.
//!
//! Reading drives an event parser (saphyr-parser) and builds a small tree
//! whose size is bounded while it is built: an alias counts again the
//! whole of what it names, so a file of a few KiB whose aliases name
//! aliases (a "billion laughs") is refused as soon as what it stands for
//! passes a limit, before anything that large exists. What an alias names
//! is shared, not copied: the tree takes no more memory than the text.
//!
//! Writing covers the few shapes the export needs: mappings and lists in
//! block style, and scalars quoted just when a reader could take them for
//! something else.

use std::{
    collections::{HashMap, HashSet},
    rc::Rc,
};

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Tag};

use super::file::MAX_FILE;

/// Values (scalars, keys, lists and mappings) a file may stand for, once
/// every alias is counted as the whole of what it names. The largest file
/// the reader takes, 500 entries with every field given, holds about
/// 22,000; a limit of 100,000 leaves room for that and keeps what the
/// reader walks, and the problems it can list, to a few MiB.
pub const MAX_NODES: usize = 100_000;
/// Text (bytes of scalars and keys) a file may stand for, aliases counted
/// again each time: a file's own text is at most 1 MiB, and a certificate
/// repeated through an alias in each of 500 entries is about 1 MiB more.
/// The reader copies values into the entries it makes, so this bounds them too.
pub const MAX_TEXT: usize = 4 * MAX_FILE;
/// Lists and mappings nested in one another at most, aliases included.
/// The file nests 4 deep (file, list, entry, its datacenter or options);
/// room is left for a value nested by mistake to be named as such.
pub const MAX_DEPTH: usize = 16;

/// A value of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integer or a float, as written.
    Number(Rc<str>),
    String(Rc<str>),
    Sequence(Rc<[Value]>),
    Mapping(Rc<Mapping>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a string (not of a number or a boolean).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A mapping's keys (always text: keys are scalars) and values, in the
/// order of the file; a key is in it once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    entries: Vec<(Rc<str>, Value)>,
}

impl Mapping {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| &**k)
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }
}

/// Why a file could not be read, and where (line and column from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Error {
    fn at(mark: Marker, message: impl Into<String>) -> Self {
        Self { line: mark.line(), column: mark.col() + 1, message: message.into() }
    }
}

impl From<ScanError> for Error {
    fn from(error: ScanError) -> Self {
        Self::at(*error.marker(), error.info())
    }
}

/// Reads one YAML document; an empty file is `Null`.
pub fn load(text: &str) -> Result<Value, Error> {
    let mut builder = Builder::default();
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event?;
        let at = span.start;
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Error::at(at, "a second document: an integrations file is one document"));
                }
            }
            Event::Scalar(raw, style, anchor, tag) => {
                let value = match tag {
                    None if style == ScalarStyle::Plain => resolve(&raw),
                    None => Value::String(raw.as_ref().into()),
                    Some(tag) => {
                        known_tag(&tag, "str", at)?;
                        Value::String(raw.as_ref().into())
                    }
                };
                builder.scalar(value, raw.len(), anchor, at)?;
            }
            Event::Alias(anchor) => builder.alias(anchor, at)?,
            Event::SequenceStart(anchor, tag) => {
                if let Some(tag) = tag {
                    known_tag(&tag, "seq", at)?;
                }
                builder.open(false, anchor, at)?;
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    known_tag(&tag, "map", at)?;
                }
                builder.open(true, anchor, at)?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close(at)?,
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
    Ok(builder.root.unwrap_or(Value::Null))
}

/// Tags change what a value is read as; the file has no use for them
/// beyond saying what a value is already (`!!str 2024`).
fn known_tag(tag: &Tag, suffix: &str, at: Marker) -> Result<(), Error> {
    if tag.is_yaml_core_schema() && tag.suffix == suffix {
        Ok(())
    } else {
        Err(Error::at(at, format!("the tag {tag} is not read here: write the value without it")))
    }
}

/// What a plain (unquoted) scalar is, by the YAML 1.2 core schema.
fn resolve(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if is_number(text) => Value::Number(text.into()),
        _ => Value::String(text.into()),
    }
}

fn is_number(text: &str) -> bool {
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if let Some(hex) = text.strip_prefix("0x") {
        return digits(hex, 16);
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return digits(octal, 8);
    }
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    // [0-9]* ( . [0-9]* )? ( [eE] [-+]? [0-9]+ )?, with a digit before the exponent.
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent.strip_prefix(['+', '-']).unwrap_or(exponent))),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    !(whole.is_empty() && fraction.is_empty())
        && all_digits(whole)
        && all_digits(fraction)
        && exponent.is_none_or(|e| digits(e, 10))
}

/// How much a value stands for, aliases counted as what they name.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    text: usize,
    /// Its own level and those nested in it.
    depth: usize,
}

/// A list or a mapping being read.
struct Open {
    anchor: usize,
    /// Its size so far; `depth` is its deepest child's.
    size: Size,
    items: Vec<Value>,
    mapping: Option<OpenMapping>,
}

/// A mapping's entries so far, their keys, and the key read until its value is.
#[derive(Default)]
struct OpenMapping {
    entries: Vec<(Rc<str>, Value)>,
    keys: HashSet<Rc<str>>,
    key: Option<Rc<str>>,
}

#[derive(Default)]
struct Builder {
    open: Vec<Open>,
    /// What each anchor names, and its size.
    anchors: HashMap<usize, (Value, Size)>,
    /// The whole document so far.
    total: Size,
    root: Option<Value>,
}

impl Builder {
    /// Counts a value in the document (an alias: all it names), refusing
    /// it once the document passes a limit.
    fn count(&mut self, size: Size, at: Marker) -> Result<(), Error> {
        self.total.nodes += size.nodes;
        self.total.text += size.text;
        if self.total.nodes > MAX_NODES {
            return Err(Error::at(
                at,
                format!(
                    "the file stands for more than {MAX_NODES} values, each alias counted as all it repeats: \
                     a file holds at most {MAX_NODES}"
                ),
            ));
        }
        if self.total.text > MAX_TEXT {
            return Err(Error::at(
                at,
                format!(
                    "the file stands for more than {} MiB of text, each alias counted as all it repeats: \
                     a file holds at most {} MiB",
                    MAX_TEXT >> 20,
                    MAX_TEXT >> 20
                ),
            ));
        }
        if self.open.len() + size.depth > MAX_DEPTH {
            return Err(Error::at(
                at,
                format!(
                    "lists and mappings nested more than {MAX_DEPTH} deep, aliases included: the limit is {MAX_DEPTH}"
                ),
            ));
        }
        Ok(())
    }

    fn scalar(&mut self, value: Value, text: usize, anchor: usize, at: Marker) -> Result<(), Error> {
        let size = Size { nodes: 1, text, depth: 0 };
        self.count(size, at)?;
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        self.attach(value, size, at)
    }

    fn alias(&mut self, anchor: usize, at: Marker) -> Result<(), Error> {
        // The parser knows every anchor named before; one not here yet is
        // that of a list or mapping the alias is inside of.
        let Some((value, size)) = self.anchors.get(&anchor).cloned() else {
            return Err(Error::at(at, "an alias inside of what it names"));
        };
        self.count(size, at)?;
        self.attach(value, size, at)
    }

    fn open(&mut self, is_mapping: bool, anchor: usize, at: Marker) -> Result<(), Error> {
        let size = Size { nodes: 1, text: 0, depth: 1 };
        self.count(size, at)?;
        let mapping = is_mapping.then(OpenMapping::default);
        self.open.push(Open { anchor, size: Size { depth: 0, ..size }, items: Vec::new(), mapping });
        Ok(())
    }

    fn close(&mut self, at: Marker) -> Result<(), Error> {
        let Some(open) = self.open.pop() else { return Ok(()) };
        let value = match open.mapping {
            Some(OpenMapping { entries, .. }) => Value::Mapping(Rc::new(Mapping { entries })),
            None => Value::Sequence(open.items.into()),
        };
        let size = Size { depth: open.size.depth + 1, ..open.size };
        if open.anchor != 0 {
            self.anchors.insert(open.anchor, (value.clone(), size));
        }
        self.attach(value, size, at)
    }

    /// Puts a value counted already in the list or mapping it is in.
    fn attach(&mut self, value: Value, size: Size, at: Marker) -> Result<(), Error> {
        let Some(parent) = self.open.last_mut() else {
            self.root = Some(value);
            return Ok(());
        };
        parent.size.nodes += size.nodes;
        parent.size.text += size.text;
        parent.size.depth = parent.size.depth.max(size.depth);
        let Some(OpenMapping { entries, keys, key }) = &mut parent.mapping else {
            parent.items.push(value);
            return Ok(());
        };
        if let Some(key) = key.take() {
            entries.push((key, value));
            return Ok(());
        }
        let text: Rc<str> = match value {
            Value::String(text) | Value::Number(text) => text,
            Value::Bool(b) => b.to_string().into(),
            Value::Null => "null".into(),
            Value::Sequence(_) | Value::Mapping(_) => {
                return Err(Error::at(at, "a key that is a list or a mapping: keys are text"))
            }
        };
        if !keys.insert(text.clone()) {
            return Err(Error::at(at, format!("{text} is a key of this mapping twice")));
        }
        *key = Some(text);
        Ok(())
    }
}

/// A scalar as written after `key: ` (or `- `) at `indent`: plain when
/// it reads back as the same text, else quoted; text of several lines as
/// a literal block (a PEM certificate stays readable), indented under it.
pub fn scalar(text: &str, indent: usize) -> String {
    if is_plain(text) {
        return text.to_owned();
    }
    if let Some(block) = literal_block(text, indent + 2) {
        return block;
    }
    if text.chars().all(printable) {
        return format!("'{}'", text.replace('\'', "''"));
    }
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if printable(c) => quoted.push(c),
            c => quoted.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    quoted.push('"');
    quoted
}

/// What may stand unquoted on one line: neither space nor line break nor
/// control character, no YAML indicator at its start, no `: ` or ` #`
/// inside, and not something else by the core schema (`true`, `1.0`,
/// `null`) nor by YAML 1.1's readers (`yes`, `off`).
fn is_plain(text: &str) -> bool {
    const INDICATORS: &str = "-?:,[]{}#&*!|>'\"%@`";
    let yaml_1_1 = ["y", "n", "yes", "no", "on", "off"];
    matches!(resolve(text), Value::String(_))
        && !yaml_1_1.iter().any(|word| word.eq_ignore_ascii_case(text))
        && text.chars().all(printable)
        && !text.starts_with(|c: char| c == ' ' || INDICATORS.contains(c))
        && !text.ends_with([' ', ':'])
        && !text.contains(": ")
        && !text.contains(" #")
}

/// Text a literal block keeps as it is: lines of printable characters
/// that end in no space, the first not indented; none or one line break
/// at the end (`|-`, `|`).
fn literal_block(text: &str, indent: usize) -> Option<String> {
    let (body, indicator) = match text.strip_suffix('\n') {
        Some(body) => (body, "|"),
        None => (text, "|-"),
    };
    let lines: Vec<&str> = body.split('\n').collect();
    let readable = lines.len() > 1
        && !lines[0].starts_with(' ')
        && !lines[0].is_empty()
        && lines.last().is_some_and(|line| !line.is_empty())
        && lines.iter().all(|line| !line.ends_with(' ') && line.chars().all(printable));
    if !readable {
        return None;
    }
    let mut block = String::from(indicator);
    for line in lines {
        block.push('\n');
        if !line.is_empty() {
            block.push_str(&" ".repeat(indent));
            block.push_str(line);
        }
    }
    Some(block)
}

/// Characters written as they are: not control characters nor the line
/// breaks and byte order mark YAML treats apart.
fn printable(c: char) -> bool {
    matches!(c, ' '..='~')
        || (c >= '\u{a0}' && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_as_the_same_text() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\nabc==\n-----END CERTIFICATE-----\n";
        for text in [
            "plain",
            "it's",
            "a#b",
            "a:b",
            "https://b.example.com:8443/x",
            "é ü 日本",
            "2024-01-01",
            "1_000",
            "",
            " lead",
            "trail ",
            "a: b",
            "a #b",
            "#x",
            "-",
            "-x",
            "?x",
            ":x",
            "x:",
            "*x",
            "&x",
            "!x",
            "|x",
            ">x",
            "%x",
            "@x",
            "`x",
            "'x",
            "\"x",
            "[x]",
            "{x}",
            "---",
            "...",
            "true",
            "False",
            "yes",
            "off",
            "null",
            "~",
            "1",
            "-1.5",
            "0x1F",
            "0o17",
            "1e3",
            ".inf",
            ".NaN",
            "tab\there",
            "bell\u{7}",
            "a\r\nb",
            "line\u{2028}break",
            "\u{feff}bom",
            "two\nlines",
            pem,
            "two\n\n",
            "\nfirst empty",
            " indented\nfirst",
            "space \nbefore a break",
            "back\\slash \"quoted\"",
        ] {
            let written = scalar(text, 4);
            let document = format!("outer:\n    key: {written}\n");
            let Ok(Value::Mapping(outer)) = load(&document) else { panic!("{document}") };
            let Some(Value::Mapping(inner)) = outer.get("outer") else { panic!("{document}") };
            assert_eq!(inner.get("key").and_then(Value::as_str), Some(text), "{document}");
        }
        assert_eq!(scalar("<fill in: the token>", 0), "'<fill in: the token>'");
        assert_eq!(scalar("Our **main** one", 0), "Our **main** one");
        // A certificate stays readable: a literal block under its key.
        assert_eq!(scalar("A\nB\n", 4), "|\n      A\n      B");
        assert_eq!(scalar("A\nB", 4), "|-\n      A\n      B");
    }

    #[test]
    fn plain_scalars_are_read_by_the_core_schema() {
        let Ok(Value::Mapping(read)) = load("a: 1\nb: -2.5e3\nc: true\nd: ~\ne:\nf: 1.2.3\ng: '1'\nh: .inf\n") else {
            panic!()
        };
        let values: Vec<&Value> = read.iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            [
                &Value::Number("1".into()),
                &Value::Number("-2.5e3".into()),
                &Value::Bool(true),
                &Value::Null,
                &Value::Null,
                &Value::String("1.2.3".into()),
                &Value::String("1".into()),
                &Value::Number(".inf".into()),
            ]
        );
    }
}
