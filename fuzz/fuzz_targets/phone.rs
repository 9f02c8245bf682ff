//! Phone cells through the E.164 normaliser under several default regions: a number it
//! accepts must come out as E.164 that normalises to itself, with the same time zone.
//!
//! Input: `[region selector][cell]`.
#![no_main]

use dialerd::store::phone;
use libfuzzer_sys::fuzz_target;

const REGIONS: [Option<&str>; 8] = [
    None,
    Some("DE"),
    Some("US"),
    Some("GB"),
    Some("NO"),
    Some("IT"),
    Some("AR"),
    Some("IN"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(cell) = std::str::from_utf8(rest) else {
        return;
    };
    let region = REGIONS[sel as usize % REGIONS.len()].and_then(phone::region);
    if let Ok((e164, zone)) = phone::normalise_with_zone(cell, region) {
        assert!(e164.starts_with('+'), "{e164}");
        let again = phone::normalise(&e164, None)
            .unwrap_or_else(|e| panic!("{cell:?} gave {e164} which does not read back: {e}"));
        assert_eq!(again, e164, "{cell:?}");
        assert_eq!(phone::time_zone_of(&e164), zone, "{cell:?}");
    }
});
