//! Phone numbers as imported: the characters allowed, E.164 normalisation with a default
//! region, and the time zone a number's country suggests.

use phonenumber::country;
use std::str::FromStr;

/// A default region as an ISO 3166 code the phone-number metadata knows (`DE`, `US`, …).
pub fn region(code: &str) -> Option<country::Id> {
    country::Id::from_str(&code.to_ascii_uppercase()).ok()
}

/// Normalises one phone cell to E.164, or says why it cannot.
pub fn normalise(cell: &str, default_region: Option<country::Id>) -> Result<String, String> {
    normalise_with_zone(cell, default_region).map(|(e164, _)| e164)
}

/// Like `normalise`, with the principal time zone of the number's country (one parse for both).
pub fn normalise_with_zone(
    cell: &str,
    default_region: Option<country::Id>,
) -> Result<(String, Option<&'static str>), String> {
    let cell = cell.trim();
    if let Some(bad) = cell
        .chars()
        .find(|c| !(c.is_ascii_digit() || "()+-. ".contains(*c)))
    {
        return Err(format!(
            "{cell:?} holds {bad:?}; a phone number may hold only digits, ( ) + - . and spaces"
        ));
    }
    // With a `+` the region means nothing, yet phonenumber reads some such numbers
    // differently under one (`+7 840…` under IT): read them as a stored E.164 is read back.
    let default_region = if cell.starts_with('+') {
        None
    } else {
        default_region
    };
    let number = phonenumber::parse(default_region, cell).map_err(|e| {
        if default_region.is_none() && !cell.starts_with('+') {
            format!("{cell:?} has no country code and the campaign has no default_region")
        } else {
            format!("{cell:?} is not a phone number ({e})")
        }
    })?;
    if !phonenumber::is_valid(&number) {
        return Err(format!("{cell:?} is not a valid phone number"));
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    // What is stored must read back as itself (do-not-call matching, time zones). A cell read
    // without a region that is its own E.164 has just been read back so: not parsed twice
    // (parsing is most of an import's per-row work outside the database).
    let read_back = default_region.is_none() && e164 == cell;
    if !read_back && e164_of(&e164).as_ref() != Some(&e164) {
        return Err(format!("{cell:?} is not a valid phone number"));
    }
    let zone = number.country().id().and_then(zone_of_country);
    Ok((e164, zone))
}

/// A valid number written with `+`, as E.164.
fn e164_of(number: &str) -> Option<String> {
    let n = phonenumber::parse(None, number).ok()?;
    phonenumber::is_valid(&n).then(|| n.format().mode(phonenumber::Mode::E164).to_string())
}

/// The principal time zone of the country an E.164 number belongs to.
pub fn time_zone_of(e164: &str) -> Option<&'static str> {
    phonenumber::parse(None, e164)
        .ok()?
        .country()
        .id()
        .and_then(zone_of_country)
}

fn zone_of_country(id: country::Id) -> Option<&'static str> {
    let code = format!("{id:?}");
    super::country_zones::COUNTRY_ZONES
        .binary_search_by(|(c, _)| (*c).cmp(code.as_str()))
        .ok()
        .map(|i| super::country_zones::COUNTRY_ZONES[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_national_and_international_forms() {
        let de = region("de");
        assert_eq!(normalise("030 1234567", de).unwrap(), "+49301234567");
        assert_eq!(normalise("(030) 123-45.67", de).unwrap(), "+49301234567");
        assert_eq!(normalise("+1 (202) 555-0143", de).unwrap(), "+12025550143");
    }

    #[test]
    fn rejects_letters_and_invalid_numbers() {
        let de = region("DE");
        assert!(normalise("030 CALLME", de)
            .unwrap_err()
            .contains("only digits"));
        assert!(normalise("12", de).is_err());
        assert!(normalise("030 1234567", None)
            .unwrap_err()
            .contains("default_region"));
    }

    #[test]
    fn an_accepted_number_reads_back_as_itself_whatever_the_region() {
        // "+78405592000" under IT came out as an E.164 that did not read back (found by
        // fuzzing); a number's validity must not depend on the default region.
        // "+550900241009" came out as "+55900241009", which did not read back either.
        for cell in ["+78405592000", "+550900241009"] {
            for r in [None, region("IT"), region("DE"), region("RU"), region("BR")] {
                let got = normalise(cell, r);
                assert_eq!(got, normalise(cell, None), "{cell} {r:?}");
                if let Ok(e164) = got {
                    assert_eq!(normalise(&e164, None), Ok(e164.clone()), "{cell} {r:?}");
                }
            }
        }
    }

    #[test]
    fn time_zone_from_country() {
        assert_eq!(time_zone_of("+49301234567"), Some("Europe/Berlin"));
        assert_eq!(time_zone_of("+442071234567"), Some("Europe/London"));
        assert_eq!(time_zone_of("not"), None);
        assert!(super::super::country_zones::COUNTRY_ZONES
            .windows(2)
            .all(|w| w[0].0 < w[1].0));
    }
}
