//! A strict CSV record reader for imports (RFC 4180 quoting, `,` between fields, `\n`,
//! `\r\n` or `\r` between records, blank lines skipped).
//!
//! The csv crate is lenient where an import must not be: it keeps a stray quote inside an
//! unquoted field, glues text after a closing quote onto the field, and lets a quote that is
//! never closed swallow the rest of the file as one field. Here the first two make the record
//! a bad row ("bad quoting", the rest of its line skipped) and the third is an error naming
//! the line where the quote opened.
//!
//! A record over the [`ImportConfig`] limits (a field, the number of fields, the row's size)
//! is read to its end without keeping what is past the limit, so memory stays bounded by the
//! limits whatever the file holds.

use crate::config::ImportConfig;
use std::io::{self, BufRead};

/// What [`StrictReader::read_record`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A record (its fields are in the record given), starting on `line`.
    Record {
        /// 1-based line the record starts on.
        line: u64,
    },
    /// A record with bad quoting, skipped to the end of the line where it was found.
    BadQuoting {
        /// 1-based line the record starts on.
        line: u64,
        /// What is wrong, starting with "bad quoting".
        reason: String,
    },
    /// A record over a limit, read to its end (quoting respected) but not kept.
    OverLimit {
        /// 1-based line the record starts on.
        line: u64,
        /// Which limit, naming its config key.
        reason: String,
    },
    /// No more input.
    End,
}

/// A quoted field still open at the end of the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Unclosed {
    /// 1-based line of the opening quote.
    pub line: u64,
}

/// Where the reader is inside a record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    Start,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: closing, or the first of `""`.
    QuoteInQuoted,
    /// After bad quoting: skipping to the end of the line.
    Skip,
}

/// Reads records one at a time from a buffered input.
pub struct StrictReader<R> {
    input: R,
    limits: ImportConfig,
    /// Line of the next byte (1-based).
    line: u64,
    /// The last byte was `\r`: a `\n` right after it ends the same line.
    after_cr: bool,
    field: Vec<u8>,
}

impl<R: BufRead> StrictReader<R> {
    /// A reader at line 1 of `input`, refusing records over `limits`.
    pub fn new(input: R, limits: ImportConfig) -> Self {
        Self {
            input,
            limits,
            line: 1,
            after_cr: false,
            field: Vec::new(),
        }
    }

    /// Reads the next record into `record` (cleared first).
    pub fn read_record(
        &mut self,
        record: &mut csv::ByteRecord,
    ) -> io::Result<Result<Next, Unclosed>> {
        record.clear();
        self.field.clear();
        let mut state = State::Start;
        // Line of the record's first byte (blank lines before it are skipped) and of the
        // opening quote of the field being read.
        let mut start: Option<u64> = None;
        let mut quote_line = 0;
        let mut bad: Option<String> = None;
        // Set once the record is over a limit: from then on nothing of it is kept.
        let mut over: Option<String> = None;
        // Fields ended so far, and bytes of the record so far (its line ending excluded).
        let mut ended = 0usize;
        let mut size = 0usize;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                // End of input.
                return Ok(match (state, start) {
                    (State::Quoted, _) => Err(Unclosed { line: quote_line }),
                    (State::Skip, Some(line)) => {
                        record.clear();
                        Ok(Next::BadQuoting {
                            line,
                            reason: bad.take().unwrap_or_default(),
                        })
                    }
                    (_, None) => Ok(Next::End),
                    (_, Some(line)) => match over.take() {
                        Some(reason) => {
                            record.clear();
                            Ok(Next::OverLimit { line, reason })
                        }
                        None => {
                            record.push_field(&self.field);
                            Ok(Next::Record { line })
                        }
                    },
                });
            }
            let mut used = 0;
            let mut done = false;
            for &b in buf {
                used += 1;
                let line_here = self.line;
                let newline = match b {
                    b'\r' => {
                        self.line += 1;
                        self.after_cr = true;
                        true
                    }
                    b'\n' => {
                        if !std::mem::take(&mut self.after_cr) {
                            self.line += 1;
                        }
                        true
                    }
                    _ => {
                        self.after_cr = false;
                        false
                    }
                };
                if start.is_none() {
                    if newline {
                        // A blank line (or the `\n` of a `\r\n` ending the last record).
                        continue;
                    }
                    start = Some(line_here);
                }
                let column = ended + 1;
                state = match (state, b) {
                    (State::Skip, _) if newline => {
                        done = true;
                        State::Skip
                    }
                    (State::Skip, _) => State::Skip,
                    (State::Quoted, b'"') => State::QuoteInQuoted,
                    (State::Quoted, _) => {
                        self.field.push(b);
                        State::Quoted
                    }
                    (State::QuoteInQuoted, b'"') => {
                        self.field.push(b'"');
                        State::Quoted
                    }
                    (State::Start | State::Unquoted | State::QuoteInQuoted, b',') => {
                        record.push_field(&self.field);
                        self.field.clear();
                        ended += 1;
                        State::Start
                    }
                    (_, _) if newline => {
                        record.push_field(&self.field);
                        self.field.clear();
                        done = true;
                        State::Start
                    }
                    (State::Start, b'"') => {
                        quote_line = line_here;
                        State::Quoted
                    }
                    (State::Unquoted, b'"') => {
                        bad = Some(format!(
                            "bad quoting: a quote inside unquoted field {column} (quote the field and double the quote)"
                        ));
                        State::Skip
                    }
                    (State::QuoteInQuoted, _) => {
                        bad = Some(format!(
                            "bad quoting: text after the closing quote of field {column}"
                        ));
                        State::Skip
                    }
                    (State::Start | State::Unquoted, _) => {
                        self.field.push(b);
                        State::Unquoted
                    }
                };
                if done {
                    break;
                }
                size += 1;
                if over.is_none() {
                    over = over_limit(&self.limits, column, ended, self.field.len(), size);
                }
                if over.is_some() {
                    // Past a limit the record is only parsed to find its end.
                    self.field.clear();
                    record.clear();
                }
            }
            self.input.consume(used);
            if done {
                let line = start.unwrap_or(self.line);
                return Ok(Ok(match (bad.take(), over.take()) {
                    (Some(reason), _) => {
                        record.clear();
                        Next::BadQuoting { line, reason }
                    }
                    (None, Some(reason)) => {
                        record.clear();
                        Next::OverLimit { line, reason }
                    }
                    (None, None) => Next::Record { line },
                }));
            }
        }
    }
}

/// Which limit a record is over, if any: `ended` fields ended so far, `column` the one being
/// read (`field` bytes of it kept) and `size` bytes read of the record.
fn over_limit(
    l: &ImportConfig,
    column: usize,
    ended: usize,
    field: usize,
    size: usize,
) -> Option<String> {
    if ended >= l.max_columns {
        Some(format!(
            "has more than {} columns (import.max_columns)",
            l.max_columns
        ))
    } else if field > l.max_field_bytes {
        Some(format!(
            "field {column} is longer than {} bytes (import.max_field_bytes)",
            l.max_field_bytes
        ))
    } else if size > l.max_row_bytes {
        Some(format!(
            "is longer than {} bytes (import.max_row_bytes)",
            l.max_row_bytes
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's line and its fields, or the bad-quoting reason.
    type Got = (u64, Result<Vec<String>, String>);

    /// Every record of `text`, and the line of an unclosed quote.
    fn all(text: &str, buffer: usize) -> (Vec<Got>, Option<u64>) {
        all_within(text, buffer, ImportConfig::default())
    }

    /// As [`all`], with these limits.
    fn all_within(text: &str, buffer: usize, limits: ImportConfig) -> (Vec<Got>, Option<u64>) {
        let mut r = StrictReader::new(
            io::BufReader::with_capacity(buffer, text.as_bytes()),
            limits,
        );
        let mut record = csv::ByteRecord::new();
        let mut out = Vec::new();
        loop {
            match r.read_record(&mut record).unwrap() {
                Ok(Next::Record { line }) => out.push((
                    line,
                    Ok(record
                        .iter()
                        .map(|f| String::from_utf8(f.to_vec()).unwrap())
                        .collect()),
                )),
                Ok(Next::BadQuoting { line, reason } | Next::OverLimit { line, reason }) => {
                    out.push((line, Err(reason)))
                }
                Ok(Next::End) => return (out, None),
                Err(Unclosed { line }) => return (out, Some(line)),
            }
        }
    }

    fn fields(v: &[&str]) -> Result<Vec<String>, String> {
        Ok(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn reads_rfc_4180_with_any_line_ending_and_buffer_size() {
        let text = "a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\n\n\"two\nlines\",2,\r3,,\"\"\n";
        for buffer in [1, 2, 3, 7, 64] {
            let (got, err) = all(text, buffer);
            assert_eq!(err, None);
            assert_eq!(
                got,
                [
                    (1, fields(&["a", "b", "c"])),
                    (2, fields(&["x, y", "say \"hi\"", ""])),
                    (4, fields(&["two\nlines", "2", ""])),
                    (6, fields(&["3", "", ""])),
                ],
                "buffer {buffer}"
            );
        }
        // No newline at the end.
        assert_eq!(all("a,b", 8).0, [(1, fields(&["a", "b"]))]);
        assert_eq!(all("", 8), (vec![], None));
    }

    #[test]
    fn stray_quotes_and_text_after_a_closing_quote_are_bad_rows() {
        let text = "n,phone\nAnn,030 1\nBob,5\" screen,x\nCid,\"030 2\"x,y\nDan,030 3\n";
        for buffer in [1, 5, 64] {
            let (got, err) = all(text, buffer);
            assert_eq!(err, None);
            assert_eq!(got.len(), 5, "{got:?}");
            assert_eq!(got[1], (2, fields(&["Ann", "030 1"])));
            assert_eq!(got[2].0, 3);
            let reason = got[2].1.clone().unwrap_err();
            assert!(
                reason.starts_with("bad quoting: a quote inside unquoted field 2"),
                "{reason}"
            );
            assert_eq!(got[3].0, 4);
            let reason = got[3].1.clone().unwrap_err();
            assert!(
                reason.contains("text after the closing quote of field 2"),
                "{reason}"
            );
            assert_eq!(got[4], (5, fields(&["Dan", "030 3"])));
        }
    }

    #[test]
    fn an_unclosed_quote_names_the_line_it_opened_on() {
        let (got, err) = all("n,phone\nAnn,030 1\nBob,\"030 2\nCid,030 3\nDan,030 4\n", 4);
        assert_eq!(got.len(), 2);
        assert_eq!(err, Some(3));
        // In the header.
        assert_eq!(all("\"n,phone\nAnn,1\n", 64), (vec![], Some(1)));
    }

    fn limits(max_field_bytes: usize, max_columns: usize, max_row_bytes: usize) -> ImportConfig {
        ImportConfig {
            max_field_bytes,
            max_columns,
            max_row_bytes,
        }
    }

    #[test]
    fn records_over_a_limit_are_refused_by_line_and_the_next_ones_read() {
        // Field limit 4, 3 columns, rows of 16 bytes.
        let text = "a,b,c\n\
                    abcd,\"ab\"\"d\",x\n\
                    abcde,1,2\n\
                    \"long,\nquoted\r\nfield\",1\n\
                    1,2,3,4\n\
                    1,2,\n\
                    \"abcd\",\"abcd\",\"abc\"\n\
                    abc,abc,abc\n\
                    \"ab\"x,1\n\
                    last,1";
        for buffer in [1, 3, 64] {
            let (got, err) = all_within(text, buffer, limits(4, 3, 16));
            assert_eq!(err, None);
            let want: [Got; 10] = [
                (1, fields(&["a", "b", "c"])),
                (2, fields(&["abcd", "ab\"d", "x"])),
                (
                    3,
                    Err("field 1 is longer than 4 bytes (import.max_field_bytes)".into()),
                ),
                // Quoted line breaks stay inside the refused record: the next one is on line 7.
                (
                    4,
                    Err("field 1 is longer than 4 bytes (import.max_field_bytes)".into()),
                ),
                (
                    7,
                    Err("has more than 3 columns (import.max_columns)".into()),
                ),
                (8, fields(&["1", "2", ""])),
                (
                    9,
                    Err("is longer than 16 bytes (import.max_row_bytes)".into()),
                ),
                (10, fields(&["abc", "abc", "abc"])),
                (
                    11,
                    Err("bad quoting: text after the closing quote of field 1".into()),
                ),
                (12, fields(&["last", "1"])),
            ];
            assert_eq!(got, want, "buffer {buffer}");
        }
        // An unclosed quote still fails the file when its field is over the limit.
        assert_eq!(
            all_within("a\n\"abcdefgh\nij\n", 2, limits(4, 3, 16)),
            (vec![(1, fields(&["a"]))], Some(2))
        );
    }

    /// Endless `x`.
    struct Xs;

    impl io::Read for Xs {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(b'x');
            Ok(buf.len())
        }
    }

    #[test]
    fn bad_quoting_on_the_last_line_keeps_no_fields() {
        // Without a line end after it, the bad row's first field was left in the record
        // (found by fuzzing); a bad row in the middle of the file left nothing.
        for text in ["n,p\nAn,03\"0 1", "n,p\nAn,03\"0 1\n"] {
            let mut r = StrictReader::new(text.as_bytes(), ImportConfig::default());
            let mut record = csv::ByteRecord::new();
            assert_eq!(
                r.read_record(&mut record).unwrap(),
                Ok(Next::Record { line: 1 })
            );
            assert!(matches!(
                r.read_record(&mut record).unwrap(),
                Ok(Next::BadQuoting { line: 2, .. })
            ));
            assert!(record.is_empty(), "{text:?}: {record:?}");
        }
    }

    #[test]
    fn a_huge_cell_is_not_kept_in_memory() {
        // 32 MiB in one quoted cell, then a good row.
        let cell = 32 << 20;
        let input = io::Read::chain(
            io::Read::chain(&b"a,b\n1,\""[..], io::Read::take(Xs, cell)),
            &b"\"\n2,3\n"[..],
        );
        let mut r = StrictReader::new(
            io::BufReader::with_capacity(64 * 1024, input),
            ImportConfig::default(),
        );
        let mut record = csv::ByteRecord::new();
        assert_eq!(
            r.read_record(&mut record).unwrap(),
            Ok(Next::Record { line: 1 })
        );
        assert_eq!(
            r.read_record(&mut record).unwrap(),
            Ok(Next::OverLimit {
                line: 2,
                reason: "field 2 is longer than 16384 bytes (import.max_field_bytes)".into()
            })
        );
        assert!(r.field.capacity() <= 2 * 16_384, "{}", r.field.capacity());
        assert_eq!(
            r.read_record(&mut record).unwrap(),
            Ok(Next::Record { line: 3 })
        );
        assert_eq!(&record, &csv::ByteRecord::from(vec!["2", "3"]));
    }
}
