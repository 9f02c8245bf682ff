//! SIP signalling: wire (bytes ⇄ rsip), transport (sockets), transaction (sans-IO RFC 3261 §17),
//! and the server core that answers requests outside dialogs.
//!
//! Layering, bottom up as in pjsip: transport < transaction < dialog < session usage. The wire
//! and transaction layers are sans-IO: no sockets, no clock reads; time comes in as `now`.

pub mod transaction;
pub mod transport;
pub mod wire;
