//! Caller-ID lines and their verification: a call that speaks a code the owner types in
//! (external mode), or a call that must come back forwarded to the access number (forward
//! mode). Attempts are rate-limited per number and kept as an audit trail.

pub mod call;
pub mod code;
pub mod forward;

use crate::config::LinesConfig;
use crate::media::engine::MediaEngine;
use crate::sip::leg::{Dial, Incoming, SipHandle};
use crate::store::lines::{CallbackMode, Line, LineStatus};
use crate::store::{now_ms, Store, StoreError};
use code::Entry;
use forward::Forwards;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::sync::mpsc;

/// Errors of the lines layer.
#[derive(Debug, thiserror::Error)]
pub enum LinesError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The number had its allowed verification calls for now.
    #[error("{number} had {max} verification calls in the last {window}; try again later")]
    RateLimited {
        /// The number.
        number: String,
        /// Calls allowed per window.
        max: u32,
        /// The window, as configured.
        window: String,
    },
    /// Forward mode needs `lines.access_number`.
    #[error("forward verification needs lines.access_number in the configuration")]
    NoAccessNumber,
    /// A wrong code.
    #[error("wrong code; {tries_left} tries left")]
    WrongCode {
        /// Tries left before the code is burned.
        tries_left: i64,
    },
    /// Not a six-digit code.
    #[error("a code is six digits, like \"472913\"")]
    BadCode,
    /// The code can no longer be used.
    #[error("{0}; ask for a new verification call")]
    CodeUnusable(&'static str),
}

/// Metrics of lines.
#[derive(Clone)]
pub struct LineMetrics {
    /// `dialerd_line_verifications_total{mode,result}`
    pub verifications: IntCounterVec,
    /// `dialerd_lines{status}`
    pub lines: IntGaugeVec,
}

impl LineMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            verifications: IntCounterVec::new(
                Opts::new(
                    "dialerd_line_verifications_total",
                    "Line verification attempts finished, by mode and result.",
                ),
                &["mode", "result"],
            )?,
            lines: IntGaugeVec::new(
                Opts::new("dialerd_lines", "Caller-ID lines, by status."),
                &["status"],
            )?,
        };
        registry.register(Box::new(m.verifications.clone()))?;
        registry.register(Box::new(m.lines.clone()))?;
        Ok(m)
    }
}

/// The lines service: starts verifications, checks codes, takes calls to the access number.
#[derive(Clone)]
pub struct Lines {
    store: Store,
    sip: SipHandle,
    media: MediaEngine,
    cfg: LinesConfig,
    forwards: Forwards,
    metrics: LineMetrics,
    /// The runtime verification calls run on (the SIP and media one), wherever the request
    /// that starts them is served.
    runtime: tokio::runtime::Handle,
}

impl Lines {
    /// The service; its verification calls run on the current runtime.
    pub fn new(
        store: Store,
        sip: SipHandle,
        media: MediaEngine,
        cfg: LinesConfig,
        metrics: LineMetrics,
    ) -> Self {
        Self {
            store,
            sip,
            media,
            cfg,
            forwards: Forwards::default(),
            metrics,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Starts a verification of line `id` for `user`: records the attempt (or refuses it by
    /// the rate limit) and places the call in the background. Answers the line, `verifying`.
    pub async fn start_verification(&self, id: i64, user: &str) -> Result<Line, LinesError> {
        let line = self.store.line(id).await?;
        let mode = line.spec.callback_mode;
        if mode == CallbackMode::Forward && self.cfg.access_number.is_none() {
            return Err(LinesError::NoAccessNumber);
        }
        let now = now_ms();
        let (code, stored) = code::new_code(now);
        let stored = (mode == CallbackMode::External).then_some(stored);
        let window_ms = self.cfg.rate_window.as_millis() as i64;
        let Some(attempt) = self
            .store
            .begin_verification(
                &line,
                user,
                stored.as_ref(),
                self.cfg.max_calls_per_number,
                now - window_ms,
            )
            .await?
        else {
            return Err(LinesError::RateLimited {
                number: line.spec.number,
                max: self.cfg.max_calls_per_number,
                window: humantime_serde::re::humantime::format_duration(self.cfg.rate_window)
                    .to_string(),
            });
        };
        self.refresh_gauge().await;
        let me = self.clone();
        let number = line.spec.number.clone();
        let lang = line.spec.language.clone();
        self.runtime.spawn(async move {
            let result = me.place(mode, &number, &lang, &code).await;
            let status = match (mode, result.outcome) {
                (CallbackMode::Forward, "forwarded") => LineStatus::Verified,
                // The code was heard: the line waits for it to be typed in.
                (CallbackMode::External, "code_spoken") => LineStatus::Verifying,
                _ => LineStatus::Failed,
            };
            tracing::info!(line = id, %number, outcome = result.outcome, sip_code = ?result.sip_code, "line verification call ended");
            me.metrics
                .verifications
                .with_label_values(&[mode.as_str(), result.outcome])
                .inc();
            if let Err(e) = me
                .store
                .finish_verification(attempt, id, result.outcome, result.sip_code, status)
                .await
            {
                tracing::error!(line = id, error = %e, "cannot record the verification's end");
            }
            me.refresh_gauge().await;
        });
        Ok(self.store.line(id).await?)
    }

    async fn place(
        &self,
        mode: CallbackMode,
        number: &str,
        lang: &str,
        code: &str,
    ) -> call::CallResult {
        let dial = Dial {
            trunk: self.cfg.trunk.clone(),
            caller_id: self.cfg.caller_id.clone(),
            ring_timeout: self.cfg.ring_timeout,
            ..Dial::new(number)
        };
        match mode {
            CallbackMode::External => {
                let Some(clips) = call::message(&self.media, lang, code) else {
                    return call::CallResult {
                        outcome: "no_prompts",
                        sip_code: None,
                    };
                };
                call::speak(&self.sip, &self.media, dial, clips).await
            }
            CallbackMode::Forward => {
                call::forwarded(
                    &self.sip,
                    &self.media,
                    &self.forwards,
                    dial,
                    &self.cfg.caller_id_pool,
                    self.cfg.forward_timeout,
                )
                .await
            }
        }
    }

    /// True when prompts exist for `lang` (a line's language must have them).
    pub fn has_language(&self, lang: &str) -> bool {
        self.media.prompts().languages().contains(&lang)
    }

    /// The prompt languages there are, for error messages.
    pub fn languages(&self) -> Vec<String> {
        let mut l: Vec<String> = self
            .media
            .prompts()
            .languages()
            .into_iter()
            .map(str::to_string)
            .collect();
        l.sort();
        l
    }

    /// Checks a code typed in for line `id`; the line verified, or why not. Anything but six
    /// digits (spaces allowed) is refused without costing a try.
    pub async fn enter_code(&self, id: i64, typed: &str) -> Result<Line, LinesError> {
        let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LinesError::BadCode);
        }
        let line = self.store.line(id).await?;
        let stored = self.store.line_code(id).await?;
        let (entry, tries) = code::check(stored.as_ref(), typed, now_ms());
        let end = match entry {
            Entry::Accepted => Some((LineStatus::Verified, "code_accepted")),
            Entry::Burned if stored.as_ref().is_some_and(|s| s.tries < tries) => {
                Some((LineStatus::Failed, "code_burned"))
            }
            Entry::Expired => Some((LineStatus::Failed, "code_expired")),
            _ => None,
        };
        if stored.is_some() {
            self.store.record_code_entry(id, tries, end).await?;
        }
        if let Some((_, outcome)) = end {
            self.metrics
                .verifications
                .with_label_values(&[line.spec.callback_mode.as_str(), outcome])
                .inc();
            self.refresh_gauge().await;
        }
        match entry {
            Entry::Accepted => Ok(self.store.line(id).await?),
            Entry::Wrong { tries_left } => Err(LinesError::WrongCode { tries_left }),
            Entry::Burned => Err(LinesError::CodeUnusable(
                "the code was burned by three wrong tries",
            )),
            Entry::Expired => Err(LinesError::CodeUnusable(
                "the code expired (codes last ten minutes)",
            )),
            Entry::NoCode => Err(LinesError::CodeUnusable("no code is waiting for this line")),
        }
    }

    /// Takes calls to the access number: each goes to the forward verification it returns
    /// for; any other to `callbacks` (a line's callers forwarded to dialerd), else 404.
    pub async fn serve_access_calls(
        self,
        mut calls: mpsc::Receiver<Incoming>,
        callbacks: Option<mpsc::Sender<Incoming>>,
    ) {
        while let Some(call) = calls.recv().await {
            let Some(call) = self.forwards.offer(call) else {
                continue;
            };
            let call = match &callbacks {
                Some(up) => match up.try_send(call) {
                    Ok(()) => continue,
                    Err(e) => e.into_inner(),
                },
                None => call,
            };
            tracing::info!(from = %call.from_user, "call to the access number matches no verification; 404");
            self.sip.reject(call.leg.id, 404).await;
        }
    }

    /// Every `every` until `stop`: lines whose spoken code ran out untyped become `failed`.
    pub async fn expire_codes_periodically(
        self,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        while stop.run_until_cancelled(tick.tick()).await.is_some() {
            match self.store.expire_codes(now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    self.metrics
                        .verifications
                        .with_label_values(&["external", "code_expired"])
                        .inc_by(n);
                    self.refresh_gauge().await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot expire verification codes"),
            }
        }
    }

    /// Sets `dialerd_lines{status}` from the store.
    pub async fn refresh_gauge(&self) {
        if let Ok(counts) = self.store.line_counts().await {
            for status in LineStatus::ALL {
                let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |c| c.1);
                self.metrics
                    .lines
                    .with_label_values(&[status.as_str()])
                    .set(n);
            }
        }
    }
}
