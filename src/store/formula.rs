//! Neutralising cells a spreadsheet would run as formulas (CSV injection, as OWASP describes
//! it): a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a `'`
//! in front, so Excel and LibreOffice show it as text; NUL bytes are dropped. A cell that is
//! a plain number (`-12.5`, `+4930123456`) stays as it is: a spreadsheet reads it as that
//! number and nothing can run, and phone numbers and negative amounts stay usable.

use std::borrow::Cow;

/// Characters that make a spreadsheet treat a cell as a formula or a DDE command.
const TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether `s` is a plain decimal number: optional sign, digits, optional fraction.
fn plain_number(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !(body.contains('.') && fraction.is_empty())
}

/// `cell` safe to open in a spreadsheet: without NULs, and with a `'` in front when it would
/// start a formula.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    let cell: Cow<'_, str> = if cell.contains('\0') {
        Cow::Owned(cell.replace('\0', ""))
    } else {
        Cow::Borrowed(cell)
    };
    if cell.starts_with(TRIGGERS) && !plain_number(&cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_get_a_quote_and_nuls_go() {
        for (input, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("\0=1+1", "'=1+1"),
            ("a\0b", "ab"),
            ("Ann", "Ann"),
            ("a=b", "a=b"),
            ("-", "'-"),
            ("+", "'+"),
            ("-.5", "'-.5"),
            ("-1.", "'-1."),
            ("-1e5", "'-1e5"),
            ("", ""),
        ] {
            assert_eq!(neutralise(input), want, "{input:?}");
        }
    }

    #[test]
    fn plain_numbers_stay_numbers() {
        for n in ["-12.5", "+4930123456", "-0", "42", "3.25"] {
            assert_eq!(neutralise(n), n);
        }
    }
}
