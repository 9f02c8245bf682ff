//! CSV imports through the strict record reader, with each field through the phone
//! normaliser as the import does. The records must not depend on where the input's buffer
//! happens to be cut, and must stay within the limits.
//!
//! Input: `[selector][csv]`; selector bit 0 = small limits, bits 1..8 = read buffer size - 1.
#![no_main]

use std::io::BufReader;

use dialerd::config::ImportConfig;
use dialerd::store::csv_strict::{Next, StrictReader};
use dialerd::store::phone;
use libfuzzer_sys::fuzz_target;

/// Every outcome of reading `input` to its end: each record's result and fields.
fn read_all(input: &[u8], cap: usize, limits: ImportConfig) -> Vec<String> {
    let mut r = StrictReader::new(BufReader::with_capacity(cap, input), limits);
    let mut rec = csv::ByteRecord::new();
    let mut seen = Vec::new();
    loop {
        let next = r
            .read_record(&mut rec)
            .expect("reading a slice cannot fail");
        match &next {
            Ok(Next::Record { .. }) => {
                assert!(rec.len() <= limits.max_columns, "{} columns", rec.len());
                for f in rec.iter() {
                    assert!(f.len() <= limits.max_field_bytes, "field of {}", f.len());
                }
            }
            Ok(Next::End) | Err(_) => {
                seen.push(format!("{next:?}"));
                return seen;
            }
            Ok(_) => assert!(rec.is_empty(), "a skipped record keeps fields"),
        }
        seen.push(format!("{next:?} {rec:?}"));
        assert!(seen.len() <= input.len() + 1, "records without input");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let limits = if sel & 1 == 1 {
        ImportConfig {
            max_field_bytes: 16,
            max_columns: 4,
            max_row_bytes: 48,
        }
    } else {
        ImportConfig::default()
    };
    let small = read_all(input, 1 + (sel >> 1) as usize, limits);
    let whole = read_all(input, 64 * 1024, limits);
    assert_eq!(small, whole, "records depend on the read buffer size");

    let region = phone::region("DE");
    let mut r = StrictReader::new(input, limits);
    let mut rec = csv::ByteRecord::new();
    while let Ok(Ok(Next::Record { .. } | Next::BadQuoting { .. } | Next::OverLimit { .. })) =
        r.read_record(&mut rec)
    {
        for f in rec.iter() {
            if let Ok(cell) = std::str::from_utf8(f) {
                let _ = phone::normalise_with_zone(cell, region);
            }
        }
    }
});
