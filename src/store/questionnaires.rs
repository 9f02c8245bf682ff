//! Questionnaires: per campaign, ordered questions; per contact, the answers, who gave them
//! and when. Questions are added, reordered and retired without losing answers: a question
//! left out of a new questionnaire while answers to it exist stays, retired, at its end.

use super::forms::{check_choices, check_name, first_misfits, is_empty, misfit_reason, ValueRule};
use super::xlsx::ColumnType;
use super::{now_ms, parse_time, rfc3339, Result, Store, StoreError};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::HashSet;

/// The type of a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionType {
    /// Free text.
    Text,
    /// One of `choices`.
    Choice,
    /// Some of `choices` (a list).
    MultiChoice,
    /// A whole number from 1 to `scale`.
    Scale,
    /// true or false (`"yes"`/`"no"` also taken).
    YesNo,
    /// A number.
    Number,
    /// A date, `2025-01-31`.
    Date,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Stable id: answers and export columns use it, never the text.
    pub id: String,
    /// What the agent asks.
    pub text: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: QuestionType,
    /// The values of a choice or multi_choice question.
    #[serde(default)]
    pub choices: Vec<String>,
    /// Answers must give it a value.
    #[serde(default)]
    pub required: bool,
    /// The top of a scale question (2 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// No longer asked; its answers stay and are exported.
    #[serde(default)]
    pub retired: bool,
}

impl Question {
    fn rule(&self) -> ValueRule {
        match self.kind {
            QuestionType::Text => ValueRule::Text,
            QuestionType::Choice => ValueRule::Choice(self.choices.clone()),
            QuestionType::MultiChoice => ValueRule::MultiChoice(self.choices.clone()),
            QuestionType::Scale => ValueRule::Scale(self.scale.unwrap_or(0)),
            QuestionType::YesNo => ValueRule::Bool,
            QuestionType::Number => ValueRule::Number,
            QuestionType::Date => ValueRule::Date,
        }
    }
}

/// Body of `PUT …/questionnaire`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionnaireSpec {
    /// The questions, in the order asked.
    pub questions: Vec<Question>,
}

/// A stored questionnaire.
#[derive(Debug, Clone, Serialize)]
pub struct Questionnaire {
    /// Campaign.
    pub campaign_id: i64,
    /// The questions in order, retired ones included.
    pub questions: Vec<Question>,
    /// Who changed it last; null while never set.
    pub updated_by: Option<String>,
    /// When (RFC 3339); null while never set.
    pub updated_at: Option<String>,
}

/// Who answered for a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Respondent {
    /// The contact.
    #[default]
    Contact,
    /// Another person, named in `respondent_name`.
    Other,
}

impl Respondent {
    fn as_str(self) -> &'static str {
        match self {
            Respondent::Contact => "contact",
            Respondent::Other => "other",
        }
    }
}

/// Body of `PUT …/contacts/{contact}/answers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswersSpec {
    /// Question id → answer.
    pub answers: Map<String, Value>,
    /// Who answered (default: the contact).
    #[serde(default)]
    pub respondent: Respondent,
    /// The other person's name (only with `respondent: other`).
    #[serde(default)]
    pub respondent_name: Option<String>,
    /// When they answered (RFC 3339; default now).
    #[serde(default)]
    pub answered_at: Option<String>,
}

/// A contact's stored answers.
#[derive(Debug, Clone, Serialize)]
pub struct Answers {
    /// Contact.
    pub contact_id: i64,
    /// Question id → answer (answers to retired questions included).
    pub answers: Map<String, Value>,
    /// `contact` or `other`.
    pub respondent: String,
    /// The other person's name.
    pub respondent_name: Option<String>,
    /// When they answered.
    pub answered_at: String,
    /// The user who recorded them.
    pub recorded_by: String,
    /// When that was.
    pub recorded_at: String,
}

/// Questionnaire answers ready to write out: the header and a stream of rows, one per contact
/// that answered, in contact order, each as long as the header.
pub struct AnswerExport {
    /// Column names: the fixed columns, then one per question id.
    pub header: Vec<String>,
    /// How a spreadsheet types each column (numbers, dates, yes/no, text).
    pub types: Vec<ColumnType>,
    /// The rows, read from the store a page at a time as the stream is polled.
    pub rows: BoxStream<'static, Result<Vec<String>>>,
}

/// Columns of an answers export before the questions.
const EXPORT_FIXED: [&str; 6] = [
    "contact_id",
    "phones",
    "respondent",
    "respondent_name",
    "answered_at",
    "recorded_by",
];

/// Contacts read per page of an export.
const EXPORT_PAGE: i64 = 500;

/// An answer as one cell: lists joined by `; `, yes/no as `yes` or `no`.
pub fn answer_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

fn questions_of(text: &str) -> Vec<Question> {
    serde_json::from_str(text).unwrap_or_default()
}

fn answers_of(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Checks every question, naming the bad field.
fn check_questions(questions: &[Question]) -> Result<()> {
    for (i, q) in questions.iter().enumerate() {
        let at = format!("questions[{i}]");
        check_name(&at, "id", &q.id)?;
        if q.text.trim().is_empty() || q.text.len() > 1000 {
            return Err(StoreError::invalid(
                format!("{at}.text"),
                "wanted 1 to 1000 characters",
            ));
        }
        let wants = matches!(q.kind, QuestionType::Choice | QuestionType::MultiChoice);
        check_choices(&at, &q.choices, wants)?;
        let scale = format!("{at}.scale");
        match (q.kind, q.scale) {
            (QuestionType::Scale, Some(2..=100)) => {}
            (QuestionType::Scale, _) => {
                return Err(StoreError::invalid(
                    scale,
                    "a scale question wants its top, from 2 to 100",
                ))
            }
            (_, Some(_)) => {
                return Err(StoreError::invalid(
                    scale,
                    "only scale questions have a scale",
                ))
            }
            (_, None) => {}
        }
        if let Some(j) = questions[..i].iter().position(|p| p.id == q.id) {
            return Err(StoreError::invalid(
                format!("{at}.id"),
                format!("{:?} is already the id of questions[{j}]", q.id),
            ));
        }
    }
    Ok(())
}

impl Store {
    /// A campaign's questionnaire (no questions while none was set).
    pub async fn questionnaire(&self, campaign_id: i64) -> Result<Questionnaire> {
        self.campaign(campaign_id).await?;
        let row = sqlx::query(
            "SELECT questions, updated_by, updated_ms FROM questionnaires WHERE campaign_id = $1",
        )
        .bind(campaign_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(match row {
            Some(r) => Questionnaire {
                campaign_id,
                questions: questions_of(&r.try_get::<String, _>("questions")?),
                updated_by: Some(r.try_get("updated_by")?),
                updated_at: Some(rfc3339(r.try_get("updated_ms")?)),
            },
            None => Questionnaire {
                campaign_id,
                questions: Vec::new(),
                updated_by: None,
                updated_at: None,
            },
        })
    }

    /// Replaces a campaign's questionnaire. Stored questions left out that have answers are
    /// kept at the end, retired; a question whose type, choices or scale change must fit
    /// every stored answer to it, else nothing changes and the error names the question and
    /// the first contacts whose answer does not fit.
    pub async fn put_questionnaire(
        &self,
        campaign_id: i64,
        spec: QuestionnaireSpec,
        actor: &str,
    ) -> Result<Questionnaire> {
        check_questions(&spec.questions)?;
        self.campaign(campaign_id).await?;
        let mut questions = spec.questions;
        let mut tx = self.writer.begin().await?;
        let old: Vec<Question> = sqlx::query_scalar::<_, String>(
            "SELECT questions FROM questionnaires WHERE campaign_id = $1",
        )
        .bind(campaign_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|t| questions_of(&t))
        .unwrap_or_default();
        let answers_sql =
            "SELECT contact_id, answers FROM answers WHERE campaign_id = $1 ORDER BY contact_id";
        let left_out: Vec<&Question> = old
            .iter()
            .filter(|o| !questions.iter().any(|q| q.id == o.id))
            .collect();
        if !left_out.is_empty() {
            let mut answered = HashSet::new();
            let mut rows = sqlx::query(answers_sql).bind(campaign_id).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let doc = answers_of(&row.try_get::<String, _>(1)?);
                answered.extend(
                    doc.into_iter()
                        .filter(|(_, v)| !is_empty(v))
                        .map(|(k, _)| k),
                );
            }
            drop(rows);
            for o in left_out {
                if answered.contains(&o.id) {
                    questions.push(Question {
                        retired: true,
                        ..o.clone()
                    });
                }
            }
        }
        let mut changed = Vec::new();
        let mut at = Vec::new();
        for (i, q) in questions.iter().enumerate() {
            let same = old.iter().any(|o| {
                o.id == q.id && o.kind == q.kind && o.choices == q.choices && o.scale == q.scale
            });
            if !same {
                changed.push((q.id.clone(), q.rule()));
                at.push(i);
            }
        }
        if let Some((i, ids)) = first_misfits(&mut tx, answers_sql, campaign_id, &changed).await? {
            let q = &questions[at[i]];
            return Err(StoreError::invalid(
                format!("questions[{}].type", at[i]),
                format!("question {:?}: {}", q.id, misfit_reason("question", &ids)),
            ));
        }
        sqlx::query(
            "INSERT INTO questionnaires (campaign_id, questions, updated_by, updated_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id) DO UPDATE SET \
             questions = excluded.questions, updated_by = excluded.updated_by, \
             updated_ms = excluded.updated_ms",
        )
        .bind(campaign_id)
        .bind(serde_json::to_string(&questions).unwrap_or_default())
        .bind(actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.questionnaire(campaign_id).await
    }

    /// A contact's answers.
    pub async fn answers(&self, campaign_id: i64, contact_id: i64) -> Result<Answers> {
        self.contact(campaign_id, contact_id).await?;
        let row = sqlx::query(
            "SELECT contact_id, answers, respondent, respondent_name, answered_ms, recorded_by, \
             recorded_ms FROM answers WHERE contact_id = $1 AND campaign_id = $2",
        )
        .bind(contact_id)
        .bind(campaign_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound {
            what: "answers for contact",
            id: contact_id,
        })?;
        Ok(Answers {
            contact_id: row.try_get("contact_id")?,
            answers: answers_of(&row.try_get::<String, _>("answers")?),
            respondent: row.try_get("respondent")?,
            respondent_name: row.try_get("respondent_name")?,
            answered_at: rfc3339(row.try_get("answered_ms")?),
            recorded_by: row.try_get("recorded_by")?,
            recorded_at: rfc3339(row.try_get("recorded_ms")?),
        })
    }

    /// Sets a contact's answers, checked against the questionnaire like a form: every answer
    /// is to an asked (not retired) question and fits it, every required question is
    /// answered. Answers to retired questions stay. Written with a history entry in one
    /// transaction; on any error nothing is written.
    pub async fn put_answers(
        &self,
        campaign_id: i64,
        contact_id: i64,
        spec: AnswersSpec,
        actor: &str,
    ) -> Result<Answers> {
        self.contact(campaign_id, contact_id).await?;
        let questionnaire = self.questionnaire(campaign_id).await?;
        let asked: Vec<&Question> = questionnaire
            .questions
            .iter()
            .filter(|q| !q.retired)
            .collect();
        if asked.is_empty() {
            return Err(StoreError::invalid(
                "answers",
                "the campaign's questionnaire asks no question",
            ));
        }
        for (id, v) in &spec.answers {
            let field = format!("answers.{id}");
            let q = questionnaire
                .questions
                .iter()
                .find(|q| &q.id == id)
                .ok_or_else(|| StoreError::invalid(&field, "not a question of the campaign"))?;
            if q.retired {
                return Err(StoreError::invalid(field, "the question is retired"));
            }
            if !is_empty(v) {
                q.rule()
                    .check(v)
                    .map_err(|reason| StoreError::invalid(&field, reason))?;
            }
        }
        for q in &asked {
            if q.required && is_empty(spec.answers.get(&q.id).unwrap_or(&Value::Null)) {
                return Err(StoreError::invalid(
                    format!("answers.{}", q.id),
                    "the question is required",
                ));
            }
        }
        let name = spec
            .respondent_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        match (spec.respondent, name) {
            (Respondent::Other, None) => {
                return Err(StoreError::invalid(
                    "respondent_name",
                    "name the person who answered for the contact",
                ))
            }
            (Respondent::Other, Some(n)) if n.len() > 200 => {
                return Err(StoreError::invalid(
                    "respondent_name",
                    "wanted at most 200 characters",
                ))
            }
            (Respondent::Contact, Some(_)) => {
                return Err(StoreError::invalid(
                    "respondent_name",
                    "only with respondent other; the contact answered",
                ))
            }
            _ => {}
        }
        let now = now_ms();
        let answered_ms = match &spec.answered_at {
            Some(t) => parse_time("answered_at", t)?,
            None => now,
        };
        let given: Map<String, Value> = spec
            .answers
            .into_iter()
            .filter(|(_, v)| !is_empty(v))
            .collect();
        let mut tx = self.writer.begin().await?;
        let stored: Map<String, Value> =
            sqlx::query_scalar::<_, String>("SELECT answers FROM answers WHERE contact_id = $1")
                .bind(contact_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|t| answers_of(&t))
                .unwrap_or_default();
        let mut all = given.clone();
        for (id, v) in stored {
            let retired = questionnaire
                .questions
                .iter()
                .any(|q| q.id == id && q.retired);
            if retired {
                all.insert(id, v);
            }
        }
        sqlx::query(
            "INSERT INTO answers (contact_id, campaign_id, answers, respondent, respondent_name, \
             answered_ms, recorded_by, recorded_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (contact_id) DO UPDATE SET answers = excluded.answers, \
             respondent = excluded.respondent, respondent_name = excluded.respondent_name, \
             answered_ms = excluded.answered_ms, recorded_by = excluded.recorded_by, \
             recorded_ms = excluded.recorded_ms",
        )
        .bind(contact_id)
        .bind(campaign_id)
        .bind(Value::Object(all).to_string())
        .bind(spec.respondent.as_str())
        .bind(name)
        .bind(answered_ms)
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::record(
            &mut tx,
            contact_id,
            actor,
            serde_json::json!({
                "op": "answers",
                "answers": given,
                "respondent": spec.respondent.as_str(),
                "respondent_name": name,
                "answered_at": rfc3339(answered_ms),
            }),
        )
        .await?;
        tx.commit().await?;
        self.answers(campaign_id, contact_id).await
    }

    /// The answers of a campaign for export: only contacts that answered, one row per contact
    /// (contact id, numbers, who answered, when, who recorded it, then one column per
    /// question id, retired ones included), read a page at a time as the rows are polled.
    pub async fn questionnaire_answers_for_export(&self, campaign_id: i64) -> Result<AnswerExport> {
        let questionnaire = self.questionnaire(campaign_id).await?;
        let types = EXPORT_FIXED
            .iter()
            .map(|k| match *k {
                "contact_id" => ColumnType::Number,
                "answered_at" => ColumnType::DateTime,
                _ => ColumnType::Text,
            })
            .chain(questionnaire.questions.iter().map(|q| match q.kind {
                QuestionType::Number | QuestionType::Scale => ColumnType::Number,
                QuestionType::Date => ColumnType::Date,
                QuestionType::YesNo => ColumnType::Bool,
                _ => ColumnType::Text,
            }))
            .collect();
        let ids: Vec<String> = questionnaire.questions.into_iter().map(|q| q.id).collect();
        let header = EXPORT_FIXED
            .iter()
            .map(|s| s.to_string())
            .chain(ids.iter().cloned())
            .collect();
        let reader = self.reader.clone();
        let pages = futures_util::stream::try_unfold(Some(0i64), move |after| {
            let (reader, ids) = (reader.clone(), ids.clone());
            async move {
                let Some(after) = after else {
                    return Ok(None);
                };
                let rows = sqlx::query(
                    "SELECT a.contact_id, c.phones, a.answers, a.respondent, a.respondent_name, \
                     a.answered_ms, a.recorded_by FROM answers a JOIN contacts c ON c.id = a.contact_id \
                     WHERE a.campaign_id = $1 AND a.contact_id > $2 ORDER BY a.contact_id LIMIT $3",
                )
                .bind(campaign_id)
                .bind(after)
                .bind(EXPORT_PAGE)
                .fetch_all(&reader)
                .await?;
                let mut page = Vec::with_capacity(rows.len());
                let mut last = after;
                for r in &rows {
                    last = r.try_get("contact_id")?;
                    let phones: Vec<String> =
                        serde_json::from_str(&r.try_get::<String, _>("phones")?)
                            .unwrap_or_default();
                    let answers = answers_of(&r.try_get::<String, _>("answers")?);
                    let mut row = vec![
                        last.to_string(),
                        phones.join(" "),
                        r.try_get("respondent")?,
                        r.try_get::<Option<String>, _>("respondent_name")?
                            .unwrap_or_default(),
                        rfc3339(r.try_get("answered_ms")?),
                        r.try_get("recorded_by")?,
                    ];
                    row.extend(
                        ids.iter()
                            .map(|id| answers.get(id).map_or_else(String::new, answer_text)),
                    );
                    page.push(row);
                }
                let next = (rows.len() as i64 == EXPORT_PAGE).then_some(last);
                Ok::<_, StoreError>(Some((page, next)))
            }
        });
        let rows = pages
            .map_ok(|page| futures_util::stream::iter(page.into_iter().map(Ok)))
            .try_flatten()
            .boxed();
        Ok(AnswerExport {
            header,
            types,
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: &str, kind: QuestionType) -> Question {
        Question {
            id: id.into(),
            text: "Why?".into(),
            kind,
            choices: vec![],
            required: false,
            scale: None,
            retired: false,
        }
    }

    #[test]
    fn questions_name_what_is_wrong() {
        let e = check_questions(&[q("a", QuestionType::Scale)]).unwrap_err();
        assert!(e.to_string().starts_with("questions[0].scale:"), "{e}");
        let e = check_questions(&[Question {
            scale: Some(5),
            ..q("a", QuestionType::Text)
        }])
        .unwrap_err();
        assert!(e.to_string().starts_with("questions[0].scale:"), "{e}");
        let e =
            check_questions(&[q("a", QuestionType::Text), q("a", QuestionType::Date)]).unwrap_err();
        assert!(e.to_string().starts_with("questions[1].id:"), "{e}");
        check_questions(&[Question {
            scale: Some(10),
            ..q("nps", QuestionType::Scale)
        }])
        .unwrap();
    }

    #[test]
    fn cells_join_lists_and_say_yes_or_no() {
        assert_eq!(answer_text(&serde_json::json!(["a", "b"])), "a; b");
        assert_eq!(answer_text(&serde_json::json!(true)), "yes");
        assert_eq!(answer_text(&serde_json::json!(7)), "7");
    }
}
