//! E-mail tasks: a contact entering one is sent a message built from the task's templates
//! through the SMTP relay of `[email]` (lettre speaks SMTP; STARTTLS when the relay offers it
//! on `smtp://`, TLS from the start on `smtps://`). Values filled into the HTML body are
//! escaped; a line break in a header value refuses the message instead of sending it.

use crate::config::EmailConfig;
use crate::store::contacts::Contact;
use crate::store::flow::{Delivery, EmailJob};
use crate::store::template;
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
    let (fields, phones) = (&job.contact.spec.fields, &job.contact.spec.phones);
    let fill = |t: &str, html| template::render(t, fields, phones, &job.campaign_name, html);
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
