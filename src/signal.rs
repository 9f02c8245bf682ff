//! Unix signals the daemon acts on.

use tokio::signal::unix::{signal, Signal as UnixSignal, SignalKind};

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: re-read the configuration.
    Reload,
    /// SIGTERM or SIGINT: drain and exit.
    Shutdown,
}

/// The signal streams; create once, early, so no signal is missed.
pub struct Signals {
    hup: UnixSignal,
    term: UnixSignal,
    int: UnixSignal,
}

impl Signals {
    /// Installs the handlers.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next signal.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Reload,
            _ = self.term.recv() => Signal::Shutdown,
            _ = self.int.recv() => Signal::Shutdown,
        }
    }
}
