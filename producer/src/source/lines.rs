//! An object's bytes → lines → recipients, for JSON Lines and CSV.
//!
//! [`LineDecoder`] is fed the object's chunks as they arrive and keeps at most one partial
//! line between chunks (cut at [`MAX_LINE_BYTES`]), so memory stays flat whatever the
//! object's size. Every item carries the position after its line (byte offset and line
//! count), which is what a continuation's cursor is made of. A line that is not a valid
//! recipient becomes [`Item::Rejected`] with its line number; only a CSV header without the
//! named columns stops the job.

use std::borrow::Cow;
use std::fmt;

use fanout_common::{Channel, ObjectFormat, ObjectSource, Recipient, RejectedLine};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{Item, Position, Read, SourceError};

/// The longest line read; a longer one is rejected (and skipped without being buffered).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Positions of the id and address columns of a CSV object, from its header row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    id: usize,
    address: usize,
}

impl Columns {
    /// Reads the header row `line` of `object`.
    pub fn from_header(object: &ObjectSource, line: &[u8]) -> Result<Self, SourceError> {
        let line = trim_line(strip_bom(line));
        let mut csv = CsvLine::default();
        let names: Vec<String> = csv
            .split(line)
            .map_err(|e| SourceError::Header(format!("{}: header row: {e}", object.url())))?
            .into_iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_owned())
            .collect();
        let find = |name: &str| {
            names.iter().position(|n| n == name).ok_or_else(|| {
                SourceError::Header(format!(
                    "{}: the header row has no column {name:?} (it has {})",
                    object.url(),
                    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
                ))
            })
        };
        Ok(Self { id: find(&object.id_field)?, address: find(&object.address_field)? })
    }
}

enum Format {
    Jsonl,
    Csv { columns: Option<Columns>, line: Box<CsvLine> },
}

/// Turns an object's bytes into recipients, one line at a time.
pub struct LineDecoder {
    object: ObjectSource,
    channel: Channel,
    format: Format,
    /// The current partial line (at most `MAX_LINE_BYTES + 1` bytes of it).
    carry: Vec<u8>,
    /// Bytes of the current partial line, kept or not.
    partial: u64,
    /// The position after the last complete line.
    pos: Position,
}

impl LineDecoder {
    /// A decoder starting at `start`. A CSV object read from its beginning takes its
    /// columns from the first line; one read from further on needs `columns`.
    pub fn new(object: &ObjectSource, channel: Channel, start: Position, columns: Option<Columns>) -> Self {
        let format = match object.format {
            ObjectFormat::Jsonl => Format::Jsonl,
            ObjectFormat::Csv => Format::Csv { columns, line: Box::default() },
        };
        Self { object: object.clone(), channel, format, carry: Vec::new(), partial: 0, pos: start }
    }

    /// Decodes the complete lines of `chunk` into `out`; a trailing partial line waits for
    /// the next chunk.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Read>) -> Result<(), SourceError> {
        let mut rest = chunk;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let head = &rest[..i];
            rest = &rest[i + 1..];
            if self.partial == 0 {
                self.complete(head, i as u64 + 1, out)?;
            } else {
                self.extend(head);
                let mut carry = std::mem::take(&mut self.carry);
                let bytes = self.partial + 1;
                self.partial = 0;
                let result = self.complete(&carry, bytes, out);
                carry.clear();
                self.carry = carry;
                result?;
            }
        }
        if !rest.is_empty() {
            self.extend(rest);
        }
        Ok(())
    }

    /// The end of the object: a last line without a newline is a line too.
    pub fn finish(&mut self, out: &mut Vec<Read>) -> Result<(), SourceError> {
        if self.partial > 0 {
            let carry = std::mem::take(&mut self.carry);
            let bytes = self.partial;
            self.partial = 0;
            self.complete(&carry, bytes, out)?;
        }
        Ok(())
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.partial += bytes.len() as u64;
        let room = (MAX_LINE_BYTES + 1).saturating_sub(self.carry.len());
        self.carry.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// One whole line (`bytes` long with its newline; `line` is what was kept of it).
    fn complete(&mut self, line: &[u8], bytes: u64, out: &mut Vec<Read>) -> Result<(), SourceError> {
        let first = self.pos.offset == 0;
        let number = self.pos.line + 1;
        self.pos.offset += bytes;
        self.pos.line += 1;
        let end = self.pos;
        let text = if first { strip_bom(line) } else { line };
        if bytes > MAX_LINE_BYTES as u64 + 1 {
            let reason = format!("line is longer than {MAX_LINE_BYTES} bytes");
            out.push(Read { item: Item::Rejected(rejected(number, reason, text)), end });
            return Ok(());
        }
        let text = trim_line(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let parsed = match &mut self.format {
            Format::Jsonl => jsonl(text, &self.object),
            Format::Csv { columns: slot @ None, .. } => {
                *slot = Some(Columns::from_header(&self.object, text)?);
                return Ok(());
            }
            Format::Csv { columns: Some(columns), line } => csv(line, text, *columns),
        };
        let item = match parsed.and_then(|r| r.check(self.channel).map(|()| r).map_err(|e| e.to_string())) {
            Ok(r) => Item::Recipient(r),
            Err(reason) => Item::Rejected(rejected(number, reason, text)),
        };
        out.push(Read { item, end });
        Ok(())
    }
}

fn rejected(line: u64, reason: String, text: &[u8]) -> RejectedLine {
    let text = &text[..text.len().min(fanout_common::message::REJECTED_LINE_MAX_BYTES + 4)];
    RejectedLine::new(line, reason, &String::from_utf8_lossy(text))
}

fn strip_bom(line: &[u8]) -> &[u8] {
    line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
}

fn trim_line(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A JSON Lines line: an object with the id and address fields (other fields ignored).
fn jsonl(text: &[u8], object: &ObjectSource) -> Result<Recipient, String> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let seed = Fields { id: &object.id_field, address: &object.address_field };
    let (id, address) = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v)).map_err(|e| {
        // serde_json reports "at line 1 column N": within one line only the column means anything.
        let msg = e.to_string();
        match msg.rfind(" at line 1 column ") {
            Some(at) => format!("not a JSON object: {} (column {})", &msg[..at], e.column()),
            None => format!("not a JSON object: {msg}"),
        }
    })?;
    match (id, address) {
        (Some(id), Some(address)) => Ok(Recipient::new(id, address)),
        (None, _) => Err(format!("no {:?} field", object.id_field)),
        (_, None) => Err(format!("no {:?} field", object.address_field)),
    }
}

/// Reads the two named fields of a JSON object and skips the rest.
struct Fields<'f> {
    id: &'f str,
    address: &'f str,
}

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = (Option<String>, Option<String>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = (Option<String>, Option<String>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut id, mut address) = (None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.id {
                id = Some(map.next_value::<Scalar>().map_err(|e| field_error::<A>(self.id, e))?.0);
            } else if key == self.address {
                address = Some(map.next_value::<Scalar>().map_err(|e| field_error::<A>(self.address, e))?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((id, address))
    }
}

fn field_error<'de, A: MapAccess<'de>>(field: &str, e: A::Error) -> A::Error {
    serde::de::Error::custom(format!("field {field:?}: {e}"))
}

/// A string, or an integer taken as its decimal text.
struct Scalar(String);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A CSV data row: the id and address columns.
fn csv(line: &mut CsvLine, text: &[u8], columns: Columns) -> Result<Recipient, String> {
    let fields = line.split(text)?;
    let field = |i: usize, what: &str| {
        let f = fields.get(i).ok_or_else(|| format!("{} fields, no {what} (column {})", fields.len(), i + 1))?;
        std::str::from_utf8(f).map(str::to_owned).map_err(|_| format!("the {what} is not UTF-8"))
    };
    Ok(Recipient::new(field(columns.id, "id")?, field(columns.address, "address")?))
}

/// Splits one CSV line into fields (RFC 4180 quoting), reusing its buffers.
struct CsvLine {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl Default for CsvLine {
    fn default() -> Self {
        // `Reader::new`, not `Reader::default`: only the former builds the parser's DFA.
        Self { reader: csv_core::Reader::new(), out: Vec::new(), ends: Vec::new() }
    }
}

impl CsvLine {
    fn split<'a>(&'a mut self, line: &[u8]) -> Result<Vec<&'a [u8]>, String> {
        use csv_core::ReadRecordResult as R;
        self.reader.reset();
        self.out.resize(line.len() + 1, 0);
        self.ends.resize(memchr::memchr_iter(b',', line).count() + 2, 0);
        let (first, nin, nout, nend) = self.reader.read_record(line, &mut self.out, &mut self.ends);
        let (n_out, n_end) = match first {
            R::InputEmpty if nin == line.len() => {
                let (last, _, o, e) = self.reader.read_record(&[], &mut self.out[nout..], &mut self.ends[nend..]);
                if !matches!(last, R::Record) {
                    return Err("not a CSV record".into());
                }
                (nout + o, nend + e)
            }
            R::Record if nin == line.len() => (nout, nend),
            R::Record => return Err("more than one record on the line (a bare carriage return?)".into()),
            _ => return Err("not a CSV record".into()),
        };
        let mut start = 0;
        Ok(self.ends[..n_end]
            .iter()
            .map(|&end| {
                let f = &self.out[start..end.min(n_out)];
                start = end;
                f
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use fanout_common::{Channel, ObjectFormat, ObjectSource};

    use super::*;

    fn object(format: ObjectFormat) -> ObjectSource {
        ObjectSource {
            bucket: "bucket".into(),
            key: "people".into(),
            version_id: None,
            format,
            id_field: "id".into(),
            address_field: "address".into(),
        }
    }

    fn decode(o: &ObjectSource, channel: Channel, text: &[u8], chunk: usize) -> Result<Vec<Read>, SourceError> {
        let mut d = LineDecoder::new(o, channel, Position::default(), None);
        let mut out = Vec::new();
        for c in text.chunks(chunk) {
            d.feed(c, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    fn summary(reads: &[Read]) -> Vec<String> {
        reads
            .iter()
            .map(|r| match &r.item {
                Item::Recipient(p) => format!("{}={}@{}/{}", p.id, p.address, r.end.line, r.end.offset),
                Item::Rejected(l) => format!("line {}: {}", l.line, l.reason),
            })
            .collect()
    }

    #[test]
    fn json_lines_with_positions_whatever_the_chunking() {
        let text = "{\"id\":\"a\",\"address\":\"x\",\"extra\":[1,{\"y\":2}]}\n\n{\"address\":\"y\",\"id\":7}\r\n{\"id\":\"c\",\"address\":\"z\"}";
        let o = object(ObjectFormat::Jsonl);
        let whole = decode(&o, Channel::Log, text.as_bytes(), text.len()).unwrap();
        assert_eq!(summary(&whole), ["a=x@1/45", "7=y@3/70", "c=z@4/94"]);
        for chunk in [1, 2, 7, 45, 46, 47] {
            assert_eq!(decode(&o, Channel::Log, text.as_bytes(), chunk).unwrap(), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn bad_json_lines_are_rejected_with_their_number_and_reason() {
        let text = concat!(
            "{\"id\":\"a\",\"address\":\"https://example.com/a\"}\n",
            "not json\n",
            "{\"id\":\"b\"}\n",
            "{\"id\":[1],\"address\":\"x\"}\n",
            "{\"id\":\"c\",\"address\":\"ftp://x\"}\n",
            "{\"id\":\"d\",\"address\":\"https://example.com/d\"} trailing\n",
            "[1,2]\n",
        );
        let reads = decode(&object(ObjectFormat::Jsonl), Channel::Webhook, text.as_bytes(), 5).unwrap();
        let got = summary(&reads);
        assert_eq!(got[0], "a=https://example.com/a@1/45");
        assert!(got[1].starts_with("line 2: not a JSON object: expected"), "{}", got[1]);
        assert_eq!(got[2], "line 3: no \"address\" field");
        assert!(got[3].starts_with("line 4: not a JSON object: field \"id\": invalid type: sequence"), "{}", got[3]);
        assert_eq!(got[4], "line 5: address: scheme \"ftp\" is not http or https");
        assert!(got[5].starts_with("line 6: not a JSON object: trailing characters"), "{}", got[5]);
        assert!(got[6].starts_with("line 7: not a JSON object: invalid type: sequence"), "{}", got[6]);
        let Item::Rejected(line) = &reads[1].item else { panic!() };
        assert_eq!(line.text, "not json");
    }

    #[test]
    fn csv_with_a_header_quotes_and_named_columns() {
        let mut o = object(ObjectFormat::Csv);
        o.id_field = "user".into();
        o.address_field = "hook".into();
        let text = "\u{feff}name,hook,user\r\n\"Smith, J\",x,u1\r\n\"say \"\"hi\"\"\",\"y,z\",u2\nonly-one-field\n,,\n";
        let reads = decode(&o, Channel::Log, text.as_bytes(), 3).unwrap();
        assert_eq!(
            summary(&reads),
            ["u1=x@2/36", "u2=y,z@3/58", "line 4: 1 fields, no id (column 3)", "line 5: id: must be 1 to 256 bytes"]
        );
    }

    #[test]
    fn a_csv_header_without_the_columns_is_an_error_naming_them() {
        let e = decode(&object(ObjectFormat::Csv), Channel::Log, b"id,email\nu1,x\n", 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "s3://bucket/people: the header row has no column \"address\" (it has \"id\", \"email\")"
        );
    }

    #[test]
    fn a_csv_read_from_the_middle_uses_the_given_columns() {
        let o = object(ObjectFormat::Csv);
        let columns = Columns::from_header(&o, b"address,id").unwrap();
        let mut d = LineDecoder::new(&o, Channel::Log, Position { offset: 100, line: 7 }, Some(columns));
        let mut out = Vec::new();
        d.feed(b"x,u9\nbroken \"quote\n", &mut out).unwrap();
        assert_eq!(summary(&out), ["u9=x@8/105", "line 9: 1 fields, no id (column 2)"]);
    }

    #[test]
    fn an_overlong_line_is_rejected_without_being_kept() {
        let mut text = b"{\"id\":\"a\",\"address\":\"x\"}\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE_BYTES));
        text.extend(b"\n{\"id\":\"b\",\"address\":\"y\"}\n");
        let o = object(ObjectFormat::Jsonl);
        let mut d = LineDecoder::new(&o, Channel::Log, Position::default(), None);
        let mut out = Vec::new();
        for c in text.chunks(1000) {
            d.feed(c, &mut out).unwrap();
            assert!(d.carry.capacity() <= 2 * MAX_LINE_BYTES + 2);
        }
        assert_eq!(
            summary(&out),
            [
                "a=x@1/25".to_owned(),
                format!("line 2: line is longer than {MAX_LINE_BYTES} bytes"),
                format!("b=y@3/{}", text.len())
            ]
        );
        let Item::Rejected(line) = &out[1].item else { panic!() };
        assert_eq!(line.text.len(), fanout_common::message::REJECTED_LINE_MAX_BYTES);
    }
}
