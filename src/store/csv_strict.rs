//! A strict CSV record reader for imports (RFC 4180 quoting, `,` between fields, `\n`,
//! `\r\n` or `\r` between records, blank lines skipped).
//!
//! The csv crate is lenient where an import must not be: it keeps a stray quote inside an
//! unquoted field, glues text after a closing quote onto the field, and lets a quote that is
//! never closed swallow the rest of the file as one field. Here the first two make the record
//! a bad row ("bad quoting", the rest of its line skipped) and the third is an error naming
//! the line where the quote opened.

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
    /// Line of the next byte (1-based).
    line: u64,
    /// The last byte was `\r`: a `\n` right after it ends the same line.
    after_cr: bool,
    field: Vec<u8>,
}

impl<R: BufRead> StrictReader<R> {
    /// A reader at line 1 of `input`.
    pub fn new(input: R) -> Self {
        Self {
            input,
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
                    (State::Skip, Some(line)) => Ok(Next::BadQuoting {
                        line,
                        reason: bad.take().unwrap_or_default(),
                    }),
                    (_, None) => Ok(Next::End),
                    (_, Some(line)) => {
                        record.push_field(&self.field);
                        Ok(Next::Record { line })
                    }
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
                let column = record.len() + 1;
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
            }
            self.input.consume(used);
            if done {
                let line = start.unwrap_or(self.line);
                return Ok(Ok(match bad.take() {
                    Some(reason) => {
                        record.clear();
                        Next::BadQuoting { line, reason }
                    }
                    None => Next::Record { line },
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's line and its fields, or the bad-quoting reason.
    type Got = (u64, Result<Vec<String>, String>);

    /// Every record of `text`, and the line of an unclosed quote.
    fn all(text: &str, buffer: usize) -> (Vec<Got>, Option<u64>) {
        let mut r = StrictReader::new(io::BufReader::with_capacity(buffer, text.as_bytes()));
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
                Ok(Next::BadQuoting { line, reason }) => out.push((line, Err(reason))),
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
}
