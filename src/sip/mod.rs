//! SIP signalling: wire (bytes ⇄ rsip), transport (sockets), transaction (sans-IO RFC 3261 §17),
//! and the server core that answers requests outside dialogs.
//!
//! Layering, bottom up as in pjsip: transport < transaction < dialog < session usage. The wire
//! and transaction layers are sans-IO: no sockets, no clock reads; time comes in as `now`.

pub mod auth;
pub mod dialog;
pub mod dns;
pub mod endpoint;
pub mod id;
pub mod leg;
pub mod metrics;
pub mod pike;
pub mod registrar;
pub mod server;
pub mod transaction;
pub mod transport;
pub mod trunk;
pub mod wire;

/// Errors starting or running the SIP layer.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// A socket could not be bound.
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    /// The TLS certificate, key or a trunk's CA cannot be used.
    #[error("sip tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The DNS resolver could not be set up.
    #[error("dns: {0}")]
    Dns(#[from] dns::DnsError),
    /// A metric could not be registered.
    #[error("cannot register sip metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
