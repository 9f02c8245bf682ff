//! Text templates filled with a contact's values, as e-mail tasks and PDF letters use them:
//! `{{fields.NAME}}`, `{{phones.N}}` (0 is the first number), `{{campaign.name}}`.

use serde_json::{Map, Value};

/// `template` with its placeholders filled; a value that is missing is empty, an unknown
/// placeholder stays as written. `html`: the values are HTML-escaped.
pub fn render(
    template: &str,
    fields: &Map<String, Value>,
    phones: &[String],
    campaign_name: &str,
    html: bool,
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = after[..close].trim();
        match value_of(key, fields, phones, campaign_name) {
            Some(v) if html => out.push_str(&escape_html(&v)),
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// The value a placeholder names; `None` for an unknown placeholder.
fn value_of(
    key: &str,
    fields: &Map<String, Value>,
    phones: &[String],
    campaign_name: &str,
) -> Option<String> {
    if key == "campaign.name" {
        return Some(campaign_name.to_string());
    }
    if let Some(name) = key.strip_prefix("fields.") {
        return Some(match fields.get(name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        });
    }
    if let Some(n) = key.strip_prefix("phones.") {
        let n: usize = n.parse().ok()?;
        return Some(phones.get(n).cloned().unwrap_or_default());
    }
    None
}

/// `s` safe inside HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled_and_escaped_in_html() {
        let fields = json!({"name": "Ann <b>&</b>", "age": 42});
        let fields = fields.as_object().unwrap();
        let phones = ["+49301234567".to_string(), "+49301234568".to_string()];
        let t = "Hi {{fields.name}} ({{ fields.age }}), {{phones.1}} {{phones.5}}|{{campaign.name}} {{x.y}} {{open";
        assert_eq!(
            render(t, fields, &phones, "Spring", false),
            "Hi Ann <b>&</b> (42), +49301234568 |Spring {{x.y}} {{open"
        );
        assert_eq!(
            render("<p>{{fields.name}}</p>", fields, &phones, "S", true),
            "<p>Ann &lt;b&gt;&amp;&lt;/b&gt;</p>"
        );
        assert_eq!(render("{{fields.none}}.", fields, &phones, "S", false), ".");
    }
}
