//! E-mail tasks: a contact entering one is sent a message built from the task's templates
//! through the SMTP relay of `[email]` (lettre speaks SMTP; STARTTLS when the relay offers it
//! on `smtp://`, TLS from the start on `smtps://`). Values filled into the HTML body are
//! escaped; a line break in a header value refuses the message instead of sending it.

use crate::config::EmailConfig;
use crate::store::contacts::Contact;
use crate::store::flow::{Delivery, EmailJob};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use std::time::Duration;

/// Longest wait for the relay, per message.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the mailer cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The relay URL is not one lettre can use.
    #[error("email.smtp_url: {0}")]
    Url(String),
    /// The sender is not an address.
    #[error("email.from: {0}")]
    From(String),
}

/// The relay e-mail tasks send through; without one every message fails, saying why.
#[derive(Clone)]
pub struct Mailer {
    relay: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
}

impl Mailer {
    /// From `[email]`.
    pub fn new(cfg: &EmailConfig) -> Result<Self, EmailError> {
        if cfg.smtp_url.is_empty() {
            return Ok(Self { relay: None });
        }
        let mut url = cfg.smtp_url.clone();
        if url.starts_with("smtp://") && !url.contains("tls=") {
            url.push_str(if url.contains('?') { "&" } else { "?" });
            url.push_str("tls=opportunistic");
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| EmailError::Url(e.to_string()))?
            .timeout(Some(SEND_TIMEOUT));
        if !cfg.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                cfg.username.clone(),
                cfg.password.expose().to_string(),
            ));
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| EmailError::From(e.to_string()))?;
        Ok(Self {
            relay: Some((builder.build(), from)),
        })
    }

    /// Sends the e-mail of `job`: `Done` with the relay's answer, `Failed` when the relay
    /// refused it or could not be reached (retried), `Refused` when the message itself is
    /// wrong (no address, a line break in a header).
    pub async fn send(&self, job: &EmailJob) -> Delivery {
        let Some((transport, from)) = &self.relay else {
            return Delivery::Failed("no SMTP relay is configured (email.smtp_url)".into());
        };
        let message = match build(from, job) {
            Ok(m) => m,
            Err(reason) => return Delivery::Refused(reason),
        };
        match transport.send(message).await {
            Ok(answer) => Delivery::Done(json!({
                "code": answer.code().to_string(),
                "to": address_of(&job.contact, &job.settings.to_field),
            })),
            Err(e) => Delivery::Failed(e.to_string()),
        }
    }
}

/// The address in the contact's field `to_field`, trimmed.
fn address_of(contact: &Contact, to_field: &str) -> String {
    match contact.spec.fields.get(to_field) {
        Some(Value::String(s)) => s.trim().to_string(),
        _ => String::new(),
    }
}

/// The message of `job`, or why it cannot be sent.
fn build(from: &Mailbox, job: &EmailJob) -> Result<Message, String> {
    let s = &job.settings;
    let fill = |t: &str, html| render(t, &job.contact, &job.campaign_name, html);
    let to = address_of(&job.contact, &s.to_field);
    if to.is_empty() {
        return Err(format!(
            "the contact has no address in field {:?}",
            s.to_field
        ));
    }
    if to.contains(['\r', '\n']) {
        return Err(format!("a line break in field {:?}", s.to_field));
    }
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("field {:?} is not an e-mail address: {e}", s.to_field))?;
    let subject = fill(&s.subject, false);
    if subject.contains(['\r', '\n']) {
        return Err("a line break in the subject".into());
    }
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject);
    let text = fill(&s.text, false);
    let built = match &s.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, fill(html, true))),
        None => builder.singlepart(SinglePart::plain(text)),
    };
    built.map_err(|e| e.to_string())
}

/// `template` with its placeholders filled: `{{fields.NAME}}`, `{{phones.N}}` (0 is the first
/// number), `{{campaign.name}}`; a value that is missing is empty, an unknown placeholder stays
/// as written. `html`: the values are HTML-escaped.
pub fn render(template: &str, contact: &Contact, campaign_name: &str, html: bool) -> String {
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
        match value_of(key, contact, campaign_name) {
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
fn value_of(key: &str, contact: &Contact, campaign_name: &str) -> Option<String> {
    if key == "campaign.name" {
        return Some(campaign_name.to_string());
    }
    if let Some(name) = key.strip_prefix("fields.") {
        return Some(match contact.spec.fields.get(name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        });
    }
    if let Some(n) = key.strip_prefix("phones.") {
        let n: usize = n.parse().ok()?;
        return Some(contact.spec.phones.get(n).cloned().unwrap_or_default());
    }
    None
}

/// `s` safe inside HTML text and attribute values.
fn escape_html(s: &str) -> String {
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

    fn contact() -> Contact {
        Contact {
            id: 7,
            campaign_id: 1,
            spec: serde_json::from_value(json!({
                "phones": ["+49301234567", "+49301234568"],
                "fields": {"name": "Ann <b>&</b>", "age": 42}
            }))
            .unwrap(),
            import_id: None,
            dnc_numbers: Vec::new(),
            last_result: None,
            dnc: 0,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn placeholders_are_filled_and_escaped_in_html() {
        let c = contact();
        let t = "Hi {{fields.name}} ({{ fields.age }}), {{phones.1}} {{phones.5}}|{{campaign.name}} {{x.y}} {{open";
        assert_eq!(
            render(t, &c, "Spring", false),
            "Hi Ann <b>&</b> (42), +49301234568 |Spring {{x.y}} {{open"
        );
        assert_eq!(
            render("<p>{{fields.name}}</p>", &c, "S", true),
            "<p>Ann &lt;b&gt;&amp;&lt;/b&gt;</p>"
        );
        assert_eq!(render("{{fields.none}}.", &c, "S", false), ".");
    }
}
