//! XLSX export files: a header row, then one row per contact with typed cells (numbers,
//! dates, yes/no, text) as the campaign's form or questionnaire types its columns. Written
//! with rust_xlsxwriter in constant-memory mode on a blocking thread that the rows are fed
//! to as they are read, so a million rows never sit in memory.

use super::formula::neutralise;
use super::{Result, StoreError};
use futures_util::{Stream, StreamExt};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};
use std::path::{Path, PathBuf};

/// Longest text Excel keeps in one cell.
const MAX_TEXT: usize = 32_767;
/// Rows waiting between the reader and the writer thread.
const QUEUE: usize = 256;

/// How the cells of one column are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (neutralised when it would run as a formula).
    Text,
    /// A number; text that does not read as one is written as text.
    Number,
    /// A date, `2025-01-31`.
    Date,
    /// A date and time (RFC 3339 or `2025-01-31T09:30`), as the wall-clock time it states.
    DateTime,
    /// Yes or no (`true`/`false`, `yes`/`no`, `1`/`0`).
    Bool,
}

/// One cell as it goes into the sheet.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Bool(bool),
    Date(u16, u8, u8),
    DateTime(u16, u8, u8, u16, u8, f64),
}

/// `text` as a cell of a column of `kind`; what does not fit the type stays text.
fn typed(text: &str, kind: ColumnType) -> Cell {
    use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
    let t = text.trim();
    if t.is_empty() {
        return Cell::Empty;
    }
    let date = |d: NaiveDate| {
        u16::try_from(d.year())
            .ok()
            .filter(|y| (1900..=9999).contains(y))
            .map(|y| (y, d.month() as u8, d.day() as u8))
    };
    let fitted = match kind {
        ColumnType::Text => None,
        ColumnType::Number => t
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Cell::Number),
        ColumnType::Date => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .and_then(date)
            .map(|(y, m, d)| Cell::Date(y, m, d)),
        ColumnType::DateTime => chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| d.naive_local())
            .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
            .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M"))
            .ok()
            .and_then(|dt| {
                let (y, m, d) = date(dt.date())?;
                let secs = dt.second() as f64 + dt.nanosecond() as f64 / 1e9;
                Some(Cell::DateTime(
                    y,
                    m,
                    d,
                    dt.hour() as u16,
                    dt.minute() as u8,
                    secs,
                ))
            }),
        ColumnType::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(Cell::Bool(true)),
            "false" | "no" | "0" => Some(Cell::Bool(false)),
            _ => None,
        },
    };
    fitted.unwrap_or_else(|| {
        let mut s = neutralise(text).into_owned();
        if s.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        Cell::Text(s)
    })
}

/// A sheet being written row by row.
struct Sheet {
    book: Workbook,
    next: u32,
    date: Format,
    datetime: Format,
}

impl Sheet {
    fn new(tmp: &Path) -> std::result::Result<Self, XlsxError> {
        let mut book = Workbook::new();
        book.set_tempdir(tmp)?;
        book.add_worksheet_with_constant_memory();
        Ok(Self {
            book,
            next: 0,
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        })
    }

    fn header(&mut self, names: &[String]) -> std::result::Result<(), XlsxError> {
        let bold = Format::new().set_bold();
        let row = self.next;
        let ws = self.book.worksheet_from_index(0)?;
        for (col, name) in names.iter().enumerate() {
            ws.write_string_with_format(row, col as u16, neutralise(name).as_ref(), &bold)?;
        }
        self.next += 1;
        Ok(())
    }

    fn row(&mut self, cells: &[Cell]) -> std::result::Result<(), XlsxError> {
        let row = self.next;
        let ws = self.book.worksheet_from_index(0)?;
        for (col, cell) in cells.iter().enumerate() {
            let col = col as u16;
            match cell {
                Cell::Empty => {}
                Cell::Text(s) => {
                    ws.write_string(row, col, s)?;
                }
                Cell::Number(n) => {
                    ws.write_number(row, col, *n)?;
                }
                Cell::Bool(b) => {
                    ws.write_boolean(row, col, *b)?;
                }
                Cell::Date(y, m, d) => {
                    let at = ExcelDateTime::from_ymd(*y, *m, *d)?;
                    ws.write_datetime_with_format(row, col, &at, &self.date)?;
                }
                Cell::DateTime(y, m, d, h, mi, s) => {
                    let at = ExcelDateTime::from_ymd(*y, *m, *d)?.and_hms(*h, *mi, *s)?;
                    ws.write_datetime_with_format(row, col, &at, &self.datetime)?;
                }
            }
        }
        self.next += 1;
        Ok(())
    }
}

/// Writes an XLSX file into `out` (from its start): the `header` row, then each of `rows`
/// with its cells typed by `types` (text where a column has no type). The rows are pulled from
/// the stream here and written on a blocking thread; temporary files go to `tmp`.
pub async fn write<S>(
    tmp: PathBuf,
    header: Vec<String>,
    types: Vec<ColumnType>,
    mut rows: S,
    out: std::fs::File,
) -> Result<std::fs::File>
where
    S: Stream<Item = Result<Vec<String>>> + Unpin,
{
    let failed = |path: &Path, e: XlsxError| StoreError::File {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<String>>(QUEUE);
    let writer = tokio::task::spawn_blocking(move || {
        let mut sheet = Sheet::new(&tmp).map_err(|e| failed(&tmp, e))?;
        sheet.header(&header).map_err(|e| failed(&tmp, e))?;
        while let Some(texts) = rx.blocking_recv() {
            let cells: Vec<Cell> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| typed(t, types.get(i).copied().unwrap_or(ColumnType::Text)))
                .collect();
            sheet.row(&cells).map_err(|e| failed(&tmp, e))?;
        }
        sheet
            .book
            .save_to_writer(&out)
            .map_err(|e| failed(&tmp, e))?;
        Ok::<_, StoreError>(out)
    });
    let mut read_error = None;
    while let Some(row) = rows.next().await {
        match row {
            Ok(cells) => {
                if tx.send(cells).await.is_err() {
                    // The writer stopped: its error is the one to report.
                    break;
                }
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| StoreError::File {
        path: PathBuf::from("xlsx"),
        source: std::io::Error::other(e),
    })?;
    match read_error {
        Some(e) => Err(e),
        None => written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_take_their_column_type_or_stay_text() {
        assert_eq!(typed("-12.5", ColumnType::Number), Cell::Number(-12.5));
        assert_eq!(typed(" 42 ", ColumnType::Number), Cell::Number(42.0));
        assert_eq!(
            typed("-2+3", ColumnType::Number),
            Cell::Text("'-2+3".into())
        );
        assert_eq!(typed("-2+3", ColumnType::Text), Cell::Text("'-2+3".into()));
        assert_eq!(typed("NaN", ColumnType::Number), Cell::Text("NaN".into()));
        assert_eq!(
            typed("2025-01-31", ColumnType::Date),
            Cell::Date(2025, 1, 31)
        );
        assert_eq!(
            typed("2025-02-30", ColumnType::Date),
            Cell::Text("2025-02-30".into())
        );
        assert_eq!(
            typed("2025-01-31T09:30:15Z", ColumnType::DateTime),
            Cell::DateTime(2025, 1, 31, 9, 30, 15.0)
        );
        assert_eq!(
            typed("2025-01-31T09:30", ColumnType::DateTime),
            Cell::DateTime(2025, 1, 31, 9, 30, 0.0)
        );
        assert_eq!(typed("yes", ColumnType::Bool), Cell::Bool(true));
        assert_eq!(typed("false", ColumnType::Bool), Cell::Bool(false));
        assert_eq!(typed("", ColumnType::Number), Cell::Empty);
        assert_eq!(typed("a\0b", ColumnType::Text), Cell::Text("ab".into()));
    }
}
