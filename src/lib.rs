//! dialerd: a SIP telephony and predictive-dialer daemon.
//!
//! Layers, top to bottom: `api` (HTTP) → `dialer`, `agents`, `lines`, `inbound` → `call` →
//! `media` → `sip` → `store`; with `config`, `http_url`, `metrics`, `node` and `shutdown` beside them.
//! A layer never calls the one above it.

pub mod agents;
pub mod api;
pub mod call;
pub mod config;
pub mod dialer;
pub mod flow;
pub mod health;
pub mod http_url;
pub mod lines;
pub mod logging;
pub mod media;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod placement;
pub mod shutdown;
pub mod signal;
pub mod sip;
pub mod state;
pub mod store;
pub mod systemd;
pub mod tls;
pub mod webrtc;
