//! Agent forms: per campaign, the ordered fields an agent sees and edits on a contact. A field's
//! `key` is the contact field (`fields.KEY`) it edits, so titles, order and types change
//! without touching the data; a new type is refused while stored values do not fit it.
//! Also the value rules questionnaires share, and the check results and edits go through.

use super::{now_ms, phone, Result, Store, StoreError};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;

/// The type of a form field: what values it takes and how the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// One line of text.
    Text,
    /// A number (JSON number, or text holding one, as imports store it).
    Number,
    /// A calendar date, `2025-01-31`.
    Date,
    /// A date and time: RFC 3339, or `2025-01-31T09:30` local to the contact.
    Datetime,
    /// One of `choices`.
    Choice,
    /// Some of `choices`: a list, or text with the choices separated by `;`.
    MultiChoice,
    /// Yes or no: true/false, or text `true`, `false`, `yes`, `no`, `1`, `0`.
    Bool,
    /// A phone number the campaign's default region can read.
    Phone,
    /// An e-mail address.
    Email,
    /// Free text of several lines.
    Note,
}

impl FieldType {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Choice => "choice",
            FieldType::MultiChoice => "multi_choice",
            FieldType::Bool => "bool",
            FieldType::Phone => "phone",
            FieldType::Email => "email",
            FieldType::Note => "note",
        }
    }
}

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormField {
    /// The contact field it edits (`fields.KEY`); imports and exports use it, never the title.
    pub key: String,
    /// What the agent reads; the key when absent.
    #[serde(default)]
    pub title: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// A result must give it a value.
    #[serde(default)]
    pub required: bool,
    /// The values of a choice or multi_choice field.
    #[serde(default)]
    pub choices: Vec<String>,
    /// Shown, but a result may not change it.
    #[serde(default)]
    pub read_only: bool,
    /// Heading the field is shown under.
    #[serde(default)]
    pub section: Option<String>,
    /// Help text shown beside it.
    #[serde(default)]
    pub help: Option<String>,
}

/// A campaign's form (the body of `PUT …/form`; `GET` adds who changed it last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormSpec {
    /// The fields, in the order shown.
    pub fields: Vec<FormField>,
}

/// A stored form.
#[derive(Debug, Clone, Serialize)]
pub struct Form {
    /// Campaign.
    pub campaign_id: i64,
    /// The fields, in the order shown.
    pub fields: Vec<FormField>,
    /// Who changed it last (a user, or `import N`); null while never set.
    pub updated_by: Option<String>,
    /// When (RFC 3339); null while never set.
    pub updated_at: Option<String>,
}

/// What values a form field or a question takes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueRule {
    /// Any text.
    Text,
    /// A number, or text holding one.
    Number,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339, or a local `YYYY-MM-DDTHH:MM[:SS]`.
    Datetime,
    /// One of these.
    Choice(Vec<String>),
    /// Some of these, as a list or `;`-separated text.
    MultiChoice(Vec<String>),
    /// A yes/no value.
    Bool,
    /// A phone number, read with this default region.
    Phone(Option<phonenumber::country::Id>),
    /// An e-mail address.
    Email,
    /// A whole number from 1 to this.
    Scale(u32),
}

/// Whether a value counts as not given: null, blank text, an empty list.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A value as short text for messages.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

impl ValueRule {
    /// The rule of a form field, reading phone numbers with `region`.
    pub(crate) fn of_field(f: &FormField, region: Option<phonenumber::country::Id>) -> Self {
        match f.kind {
            FieldType::Text | FieldType::Note => Self::Text,
            FieldType::Number => Self::Number,
            FieldType::Date => Self::Date,
            FieldType::Datetime => Self::Datetime,
            FieldType::Choice => Self::Choice(f.choices.clone()),
            FieldType::MultiChoice => Self::MultiChoice(f.choices.clone()),
            FieldType::Bool => Self::Bool,
            FieldType::Phone => Self::Phone(region),
            FieldType::Email => Self::Email,
        }
    }

    /// Checks a given (non-empty) value, saying what was wanted when it does not fit.
    pub(crate) fn check(&self, v: &Value) -> std::result::Result<(), String> {
        let text = v.as_str().map(str::trim);
        let fits = match (self, v) {
            (Self::Text, Value::String(_)) => true,
            (Self::Number, Value::Number(_)) => true,
            (Self::Number, Value::String(s)) => {
                s.trim().parse::<f64>().is_ok_and(|n| n.is_finite())
            }
            (Self::Date, Value::String(_)) => {
                chrono::NaiveDate::parse_from_str(text.unwrap_or(""), "%Y-%m-%d").is_ok()
            }
            (Self::Datetime, Value::String(_)) => {
                let t = text.unwrap_or("");
                chrono::DateTime::parse_from_rfc3339(t).is_ok()
                    || ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
                        .iter()
                        .any(|f| chrono::NaiveDateTime::parse_from_str(t, f).is_ok())
            }
            (Self::Choice(c), Value::String(_)) => c.iter().any(|c| Some(c.as_str()) == text),
            (Self::MultiChoice(c), Value::String(s)) => s
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .all(|p| c.iter().any(|c| c == p)),
            (Self::MultiChoice(c), Value::Array(items)) => items
                .iter()
                .all(|i| i.as_str().is_some_and(|s| c.iter().any(|c| c == s))),
            (Self::Bool, Value::Bool(_)) => true,
            (Self::Bool, Value::String(s)) => ["true", "false", "yes", "no", "1", "0"]
                .iter()
                .any(|b| s.trim().eq_ignore_ascii_case(b)),
            (Self::Phone(region), Value::String(s)) => phone::normalise(s, *region).is_ok(),
            (Self::Email, Value::String(_)) => text.is_some_and(email_like),
            (Self::Scale(max), Value::Number(n)) => n
                .as_u64()
                .is_some_and(|n| (1..=u64::from(*max)).contains(&n)),
            _ => false,
        };
        if fits {
            return Ok(());
        }
        let wanted = match self {
            Self::Text => "text".to_string(),
            Self::Number => "a number".into(),
            Self::Date => "a date like 2025-01-31".into(),
            Self::Datetime => "a time like 2025-01-31T09:30:00Z".into(),
            Self::Choice(c) => format!("one of {}", c.join(", ")),
            Self::MultiChoice(c) => format!("a list of some of {}", c.join(", ")),
            Self::Bool => "true or false".into(),
            Self::Phone(_) => "a phone number".into(),
            Self::Email => "an e-mail address".into(),
            Self::Scale(max) => format!("a whole number from 1 to {max}"),
        };
        Err(format!("wanted {wanted}, got {}", shown(v)))
    }
}

/// `local@domain.tld`, no spaces: what a console can send mail to, not a full RFC 5322 check.
fn email_like(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

/// Checks the ids or keys and choices of a form or questionnaire item at `at` (`fields[2]`).
pub(crate) fn check_name(at: &str, what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 100
        || name.chars().any(|c| c.is_control())
        || name.trim() != name
    {
        return Err(StoreError::invalid(
            format!("{at}.{what}"),
            "wanted 1 to 100 characters, no control characters or surrounding spaces",
        ));
    }
    Ok(())
}

/// Checks the choices of an item at `at`: a list of distinct, non-empty texts when it has
/// choices, none otherwise.
pub(crate) fn check_choices(at: &str, choices: &[String], wants: bool) -> Result<()> {
    let field = format!("{at}.choices");
    if !wants {
        if !choices.is_empty() {
            return Err(StoreError::invalid(field, "only choice types have choices"));
        }
        return Ok(());
    }
    if choices.is_empty() {
        return Err(StoreError::invalid(field, "wanted at least one choice"));
    }
    for (i, c) in choices.iter().enumerate() {
        if c.trim().is_empty() || c.contains(';') || c.len() > 200 {
            return Err(StoreError::invalid(
                format!("{field}[{i}]"),
                "wanted 1 to 200 characters, without ;",
            ));
        }
        if choices[..i].contains(c) {
            return Err(StoreError::invalid(
                format!("{field}[{i}]"),
                format!("{c:?} is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Contacts named in a "does not fit" answer at most.
const MISFITS_SHOWN: usize = 5;

/// Finds, among JSON object documents `(id, doc)` read by `sql` (bound to `campaign_id`), the
/// first rule (in the order given) that some stored value does not fit, with the first
/// offending ids: `(index of the rule, [(id, reason)])`.
pub(crate) async fn first_misfits(
    conn: &mut sqlx::AnyConnection,
    sql: &str,
    campaign_id: i64,
    rules: &[(String, ValueRule)],
) -> Result<Option<(usize, Vec<(i64, String)>)>> {
    if rules.is_empty() {
        return Ok(None);
    }
    let mut found: Option<(usize, Vec<(i64, String)>)> = None;
    let mut rows = sqlx::query(sql).bind(campaign_id).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        let id: i64 = row.try_get(0)?;
        let doc: String = row.try_get(1)?;
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&doc) else {
            continue;
        };
        // Only rules before (or at) the one found so far can still be the first to fail.
        let upto = found.as_ref().map_or(rules.len(), |(i, _)| i + 1);
        for (i, (key, rule)) in rules[..upto].iter().enumerate() {
            let Some(v) = doc.get(key).filter(|v| !is_empty(v)) else {
                continue;
            };
            if let Err(reason) = rule.check(v) {
                match &mut found {
                    Some((j, ids)) if *j == i => {
                        if ids.len() < MISFITS_SHOWN {
                            ids.push((id, reason));
                        }
                    }
                    _ => found = Some((i, vec![(id, reason)])),
                }
                break;
            }
        }
    }
    Ok(found)
}

/// The message of a rule that stored values do not fit.
pub(crate) fn misfit_reason(what: &str, ids: &[(i64, String)]) -> String {
    let list: Vec<String> = ids
        .iter()
        .map(|(id, reason)| format!("contact {id} ({reason})"))
        .collect();
    format!(
        "stored values do not fit the new {what}; nothing was changed. First contacts: {}",
        list.join("; ")
    )
}

/// A form read from its stored JSON (an unreadable one as empty rather than an error).
fn fields_of(text: &str) -> Vec<FormField> {
    serde_json::from_str(text).unwrap_or_default()
}

impl FormSpec {
    /// Checks keys (distinct), titles and choices, naming the bad field; fills empty titles.
    fn checked(mut self) -> Result<Self> {
        for i in 0..self.fields.len() {
            let at = format!("fields[{i}]");
            let f = &mut self.fields[i];
            check_name(&at, "key", &f.key)?;
            if f.title.trim().is_empty() {
                f.title = f.key.clone();
            }
            if f.title.len() > 200 {
                return Err(StoreError::invalid(
                    format!("{at}.title"),
                    "wanted at most 200 characters",
                ));
            }
            let wants = matches!(f.kind, FieldType::Choice | FieldType::MultiChoice);
            check_choices(&at, &f.choices, wants)?;
            let f = &self.fields[i];
            if let Some(j) = self.fields[..i].iter().position(|g| g.key == f.key) {
                return Err(StoreError::invalid(
                    format!("{at}.key"),
                    format!("{:?} is already the key of fields[{j}]", f.key),
                ));
            }
        }
        Ok(self)
    }
}

impl Store {
    /// A campaign's form (no fields while none was set or imported).
    pub async fn form(&self, campaign_id: i64) -> Result<Form> {
        self.campaign(campaign_id).await?;
        let row =
            sqlx::query("SELECT fields, updated_by, updated_ms FROM forms WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(match row {
            Some(r) => Form {
                campaign_id,
                fields: fields_of(&r.try_get::<String, _>("fields")?),
                updated_by: Some(r.try_get("updated_by")?),
                updated_at: Some(super::rfc3339(r.try_get("updated_ms")?)),
            },
            None => Form {
                campaign_id,
                fields: Vec::new(),
                updated_by: None,
                updated_at: None,
            },
        })
    }

    /// The default region phone fields are read with.
    pub(crate) async fn campaign_region(
        &self,
        campaign_id: i64,
    ) -> Result<Option<phonenumber::country::Id>> {
        let c = self.campaign(campaign_id).await?;
        Ok(c.spec.default_region.as_deref().and_then(phone::region))
    }

    /// Replaces a campaign's form. A field whose type or choices change (or that is new) must
    /// fit every value the campaign's contacts hold for its key, else nothing changes and the
    /// error names the field and the first contacts whose value does not fit.
    pub async fn put_form(&self, campaign_id: i64, spec: FormSpec, actor: &str) -> Result<Form> {
        let spec = spec.checked()?;
        let region = self.campaign_region(campaign_id).await?;
        let mut tx = self.writer.begin().await?;
        let old: Vec<FormField> =
            sqlx::query_scalar::<_, String>("SELECT fields FROM forms WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|t| fields_of(&t))
                .unwrap_or_default();
        let mut changed = Vec::new();
        let mut at = Vec::new();
        for (i, f) in spec.fields.iter().enumerate() {
            let same = old
                .iter()
                .any(|o| o.key == f.key && o.kind == f.kind && o.choices == f.choices);
            if !same {
                changed.push((f.key.clone(), ValueRule::of_field(f, region)));
                at.push(i);
            }
        }
        // Read inside the writing transaction: no contact changes between check and write.
        if let Some((i, ids)) = first_misfits(
            &mut tx,
            "SELECT id, fields FROM contacts WHERE campaign_id = $1 ORDER BY id",
            campaign_id,
            &changed,
        )
        .await?
        {
            let f = &spec.fields[at[i]];
            return Err(StoreError::invalid(
                format!("fields[{}].type", at[i]),
                format!(
                    "field {:?}: {}",
                    f.key,
                    misfit_reason(&format!("type {}", f.kind.as_str()), &ids)
                ),
            ));
        }
        Self::write_form(&mut tx, campaign_id, &spec.fields, actor).await?;
        tx.commit().await?;
        self.form(campaign_id).await
    }

    async fn write_form(
        conn: &mut sqlx::AnyConnection,
        campaign_id: i64,
        fields: &[FormField],
        actor: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO forms (campaign_id, fields, updated_by, updated_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (campaign_id) DO UPDATE SET fields = excluded.fields, \
             updated_by = excluded.updated_by, updated_ms = excluded.updated_ms",
        )
        .bind(campaign_id)
        .bind(serde_json::to_string(fields).unwrap_or_default())
        .bind(actor)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Adds the CSV columns the form does not have yet as `text` fields at its end (the contact
    /// data holds every column as text), in the import's transaction.
    pub(crate) async fn add_form_columns(
        conn: &mut sqlx::AnyConnection,
        campaign_id: i64,
        columns: &[String],
        actor: &str,
    ) -> Result<()> {
        let mut fields: Vec<FormField> =
            sqlx::query_scalar::<_, String>("SELECT fields FROM forms WHERE campaign_id = $1")
                .bind(campaign_id)
                .fetch_optional(&mut *conn)
                .await?
                .map(|t| fields_of(&t))
                .unwrap_or_default();
        let before = fields.len();
        for c in columns {
            if !fields.iter().any(|f| &f.key == c) {
                fields.push(FormField {
                    key: c.clone(),
                    title: c.clone(),
                    kind: FieldType::Text,
                    required: false,
                    choices: Vec::new(),
                    read_only: false,
                    section: None,
                    help: None,
                });
            }
        }
        if fields.len() > before {
            Self::write_form(conn, campaign_id, &fields, actor).await?;
        }
        Ok(())
    }

    /// The form filled with a contact's values, as the agent sees it: the fields grouped by
    /// section (in the order sections first appear), each with its value and, when the stored
    /// value does not fit the field, why.
    pub async fn form_preview(&self, campaign_id: i64, contact_id: i64) -> Result<Value> {
        let form = self.form(campaign_id).await?;
        let contact = self.contact(campaign_id, contact_id).await?;
        let region = self.campaign_region(campaign_id).await?;
        let mut sections: Vec<(Option<String>, Vec<Value>)> = Vec::new();
        for f in &form.fields {
            let value = contact
                .spec
                .fields
                .get(&f.key)
                .cloned()
                .unwrap_or(Value::Null);
            let mut item = serde_json::to_value(f).unwrap_or_default();
            item.as_object_mut().map(|o| o.remove("section"));
            if !is_empty(&value) {
                if let Err(reason) = ValueRule::of_field(f, region).check(&value) {
                    item["problem"] = Value::String(reason);
                }
            }
            item["value"] = value;
            match sections.iter_mut().find(|(s, _)| *s == f.section) {
                Some((_, items)) => items.push(item),
                None => sections.push((f.section.clone(), vec![item])),
            }
        }
        let sections: Vec<Value> = sections
            .into_iter()
            .map(|(title, fields)| serde_json::json!({"title": title, "fields": fields}))
            .collect();
        Ok(serde_json::json!({
            "campaign_id": campaign_id,
            "contact": {
                "id": contact.id,
                "phones": contact.spec.phones,
                "time_zone": contact.spec.time_zone,
                "status": contact.spec.status,
                "detail": contact.spec.detail,
                "attempts": contact.spec.attempts,
                "last_result": contact.last_result,
            },
            "sections": sections,
        }))
    }

    /// Checks an agent's result (the contact's fields after it) against the campaign's form:
    /// every required field has a value, every value fits its field's type, read-only fields
    /// keep their stored value and no key outside the form is set. Names the first field at
    /// fault (`fields.KEY`). The agent-result route calls this before writing anything.
    pub async fn check_result(
        &self,
        campaign_id: i64,
        before: &Map<String, Value>,
        after: &Map<String, Value>,
    ) -> Result<()> {
        let form = self.form(campaign_id).await?;
        let region = self.campaign_region(campaign_id).await?;
        for key in after.keys() {
            if before.get(key) != after.get(key) && !form.fields.iter().any(|f| &f.key == key) {
                return Err(StoreError::invalid(
                    format!("fields.{key}"),
                    "not a field of the campaign's form",
                ));
            }
        }
        for f in &form.fields {
            let field = format!("fields.{}", f.key);
            if f.read_only && before.get(&f.key) != after.get(&f.key) {
                return Err(StoreError::invalid(field, "the field is read-only"));
            }
        }
        check_values(&form.fields, region, Some(before), after, true)
    }

    /// Checks a contact edit (create or PATCH) against the campaign's form: the values it sets
    /// or changes must fit their fields, and a required field may not be emptied. Values it
    /// leaves alone are not judged (imported data may predate the form).
    pub async fn check_contact_fields(
        &self,
        campaign_id: i64,
        before: Option<&Map<String, Value>>,
        after: &Map<String, Value>,
    ) -> Result<()> {
        let form = self.form(campaign_id).await?;
        if form.fields.is_empty() {
            return Ok(());
        }
        let region = self.campaign_region(campaign_id).await?;
        check_values(&form.fields, region, before, after, false)
    }
}

/// Checks `after` against `fields`. `all`: every field is judged (a result); else only those
/// whose value differs from `before`, and a required one only when it was emptied.
fn check_values(
    fields: &[FormField],
    region: Option<phonenumber::country::Id>,
    before: Option<&Map<String, Value>>,
    after: &Map<String, Value>,
    all: bool,
) -> Result<()> {
    for f in fields {
        let value = after.get(&f.key).unwrap_or(&Value::Null);
        let old = before.and_then(|b| b.get(&f.key)).unwrap_or(&Value::Null);
        if !all && before.is_some() && value == old {
            continue;
        }
        let field = format!("fields.{}", f.key);
        if is_empty(value) {
            let emptied = all || !is_empty(old);
            if f.required && emptied {
                return Err(StoreError::invalid(field, "the field is required"));
            }
            continue;
        }
        ValueRule::of_field(f, region)
            .check(value)
            .map_err(|reason| StoreError::invalid(field, reason))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_take_api_and_imported_spellings_and_refuse_the_rest() {
        let c = vec!["red".to_string(), "blue".into()];
        let ok = [
            (ValueRule::Number, json!("42.5")),
            (ValueRule::Number, json!(7)),
            (ValueRule::Date, json!("2025-01-31")),
            (ValueRule::Datetime, json!("2025-01-31T09:30:00+01:00")),
            (ValueRule::Datetime, json!("2025-01-31T09:30")),
            (ValueRule::Choice(c.clone()), json!("red")),
            (ValueRule::MultiChoice(c.clone()), json!(["red", "blue"])),
            (ValueRule::MultiChoice(c.clone()), json!("red; blue")),
            (ValueRule::Bool, json!("Yes")),
            (ValueRule::Email, json!("a.b@example.org")),
            (ValueRule::Phone(phone::region("DE")), json!("030 1234567")),
            (ValueRule::Scale(5), json!(5)),
        ];
        for (rule, v) in ok {
            assert_eq!(rule.check(&v), Ok(()), "{rule:?} {v}");
        }
        let bad = [
            (ValueRule::Number, json!("12a")),
            (ValueRule::Number, json!("NaN")),
            (ValueRule::Date, json!("31.01.2025")),
            (ValueRule::Choice(c.clone()), json!("green")),
            (ValueRule::MultiChoice(c), json!(["red", 1])),
            (ValueRule::Bool, json!("maybe")),
            (ValueRule::Email, json!("a b@example.org")),
            (ValueRule::Email, json!("nobody")),
            (ValueRule::Scale(5), json!(6)),
            (ValueRule::Scale(5), json!(0)),
            (ValueRule::Text, json!(3)),
        ];
        for (rule, v) in bad {
            let e = rule.check(&v).unwrap_err();
            assert!(e.starts_with("wanted"), "{e}");
        }
    }

    #[test]
    fn a_form_names_repeated_keys_and_missing_choices() {
        let field = |key: &str, kind| FormField {
            key: key.into(),
            title: String::new(),
            kind,
            required: false,
            choices: vec![],
            read_only: false,
            section: None,
            help: None,
        };
        let e = FormSpec {
            fields: vec![field("a", FieldType::Text), field("a", FieldType::Number)],
        }
        .checked()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "fields[1].key: \"a\" is already the key of fields[0]"
        );
        let e = FormSpec {
            fields: vec![field("a", FieldType::Choice)],
        }
        .checked()
        .unwrap_err();
        assert!(e.to_string().starts_with("fields[0].choices:"), "{e}");
        let ok = FormSpec {
            fields: vec![field("a", FieldType::Text)],
        }
        .checked()
        .unwrap();
        assert_eq!(ok.fields[0].title, "a");
    }
}
