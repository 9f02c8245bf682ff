//! `pdf_zip` export files: one PDF letter per contact (a heading, then each label with its
//! value: the contact's columns and fields, and its questionnaire answers), in a ZIP archive
//! (deflate). Letters use the PDF standard font Helvetica, so no font is embedded: text is
//! written in WinAnsi (Latin-1 and the usual typographic marks); other characters show as `?`.
//! Written on a blocking thread that the letters are fed to as they are read.

use super::{Result, StoreError};
use futures_util::{Stream, StreamExt};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One contact's letter.
#[derive(Debug, Clone)]
pub struct Letter {
    /// File name inside the archive (`contact-17.pdf`).
    pub name: String,
    /// Heading.
    pub title: String,
    /// Text under the heading (a filled template; empty: none), its own line breaks kept.
    pub body: String,
    /// Label and value, in order; a label without a value is a sub-heading.
    pub lines: Vec<(String, Option<String>)>,
}

/// A4 in points.
const PAGE: (f32, f32) = (595.0, 842.0);
const MARGIN: f32 = 56.0;
const SIZE: f32 = 10.0;
const LEADING: f32 = 14.0;
/// Characters per line of a value before it wraps (Helvetica 10 pt in the value column).
const WRAP: usize = 70;
/// Characters per line of the letter's text (the full width).
const BODY_WRAP: usize = 95;
/// Letters waiting between the reader and the writer thread.
const QUEUE: usize = 64;

/// `c` in WinAnsiEncoding (Windows-1252); `?` where it has none.
fn win_ansi(c: char) -> u8 {
    match c as u32 {
        0x20..=0x7e | 0xa0..=0xff => c as u32 as u8,
        _ => match c {
            '€' => 0x80,
            '‚' => 0x82,
            '„' => 0x84,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '\t' => b' ',
            _ => b'?',
        },
    }
}

fn encode(s: &str) -> Vec<u8> {
    s.chars().filter(|c| *c != '\0').map(win_ansi).collect()
}

/// `text` cut into lines of at most `width` characters, at spaces where it can, and at its
/// own line breaks.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split(['\n', '\r']).filter(|p| !p.is_empty()) {
        let mut line = String::new();
        for word in para.split(' ') {
            let mut word = word.to_string();
            while word.chars().count() > width {
                if !line.is_empty() {
                    out.push(std::mem::take(&mut line));
                }
                let cut: String = word.chars().take(width).collect();
                word = word.chars().skip(width).collect();
                out.push(cut);
            }
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        out.push(line);
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// One row of a page: pieces of text, each (bold, x, WinAnsi bytes).
type Row = Vec<(bool, f32, Vec<u8>)>;

/// The letter's rows: the heading, then a row per label with the first line of its value and
/// a row per further line.
fn rows(letter: &Letter) -> Vec<Row> {
    let value_x = MARGIN + 140.0;
    let mut rows: Vec<Row> = vec![vec![(true, MARGIN, encode(&letter.title))], Vec::new()];
    if !letter.body.is_empty() {
        for para in letter.body.split('\n') {
            for line in wrap(para, BODY_WRAP) {
                rows.push(vec![(false, MARGIN, encode(&line))]);
            }
        }
        rows.push(Vec::new());
    }
    for (label, value) in &letter.lines {
        let Some(value) = value else {
            rows.push(Vec::new());
            rows.push(vec![(true, MARGIN, encode(label))]);
            continue;
        };
        for (i, line) in wrap(value, WRAP).into_iter().enumerate() {
            let mut row = Vec::new();
            if i == 0 {
                row.push((true, MARGIN, encode(label)));
            }
            row.push((false, value_x, encode(&line)));
            rows.push(row);
        }
    }
    rows
}

/// The letter as a PDF document, on as many A4 pages as it needs.
pub fn render(letter: &Letter) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let per_page = ((PAGE.1 - 2.0 * MARGIN) / LEADING) as usize;
    let all = rows(letter);
    let pages: Vec<&[Row]> = all.chunks(per_page.max(1)).collect();
    let ids: Vec<(Ref, Ref)> = (0..pages.len() as i32)
        .map(|i| (Ref::new(5 + 2 * i), Ref::new(6 + 2 * i)))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(ids.iter().map(|(page, _)| *page))
        .count(ids.len() as i32);
    for (rows, (page_id, content_id)) in pages.iter().zip(&ids) {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1));
        page.parent(tree);
        page.contents(*content_id);
        page.resources()
            .fonts()
            .pair(Name(b"F1"), regular)
            .pair(Name(b"F2"), bold);
        page.finish();
        let mut content = Content::new();
        for (n, row) in rows.iter().enumerate() {
            let y = PAGE.1 - MARGIN - n as f32 * LEADING;
            for (is_bold, x, text) in row {
                content.begin_text();
                content.set_font(Name(if *is_bold { b"F2" } else { b"F1" }), SIZE);
                content.next_line(*x, y);
                content.show(Str(text));
                content.end_text();
            }
        }
        pdf.stream(*content_id, &content.finish());
    }
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.finish()
}

/// Writes a ZIP archive of the letters of `letters` into `out`; `path` names the file in
/// errors.
pub async fn write<S>(path: PathBuf, mut letters: S, out: std::fs::File) -> Result<std::fs::File>
where
    S: Stream<Item = Result<Letter>> + Unpin,
{
    let failed = |path: &Path, e: String| StoreError::File {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Letter>(QUEUE);
    let at = path.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut zip = zip::ZipWriter::new(out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        while let Some(letter) = rx.blocking_recv() {
            let bytes = render(&letter);
            zip.start_file(letter.name.as_str(), options)
                .map_err(|e| failed(&at, e.to_string()))?;
            zip.write_all(&bytes)
                .map_err(|e| failed(&at, e.to_string()))?;
        }
        zip.finish().map_err(|e| failed(&at, e.to_string()))
    });
    let mut read_error = None;
    while let Some(letter) = letters.next().await {
        match letter {
            Ok(l) => {
                if tx.send(l).await.is_err() {
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
    let written = writer.await.map_err(|e| failed(&path, e.to_string()))?;
    match read_error {
        Some(e) => Err(e),
        None => written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_wrap_at_spaces_and_long_words_are_cut() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("one\ntwo", 10), ["one", "two"]);
        assert_eq!(wrap("", 10), [""]);
    }

    #[test]
    fn text_is_win_ansi() {
        assert_eq!(encode("Zoë €5 – ok\0"), b"Zo\xeb \x805 \x96 ok");
        assert_eq!(encode("日本"), b"??");
    }
}
