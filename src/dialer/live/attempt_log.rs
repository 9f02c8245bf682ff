//! The drivers' ended calls, written on their contacts in batches: one writer per daemon takes
//! whatever attempts have queued up while it wrote the last batch and writes them, and
//! releases their leases, in one transaction ([`Store::record_attempts`]). At a hundred calls
//! a second a transaction per call would leave the store seconds behind.

use crate::store::attempts::AttemptWrite;
use crate::store::Store;
use std::future::Future;
use tokio::sync::{mpsc, oneshot};

/// Most attempts in one transaction.
const BATCH: usize = 256;

/// Who wrote the attempts, for the contacts' history.
const ACTOR: &str = "dialer";

/// An attempt waiting for the writer, and who hears once it is written.
struct Queued {
    write: AttemptWrite,
    written: oneshot::Sender<()>,
}

/// Where the drivers queue their attempts; cheap to clone. The queue holds at most the calls
/// that have ended, each of which held a lease, so it cannot grow past the calls in flight.
#[derive(Clone)]
pub struct AttemptLog {
    queue: mpsc::UnboundedSender<Queued>,
}

impl AttemptLog {
    /// A log writing into `store`. The returned writer must be spawned; it ends, with
    /// everything written, once every `AttemptLog` clone is dropped.
    pub fn new(store: Store) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, rx) = mpsc::unbounded_channel();
        (Self { queue }, write_batches(store, rx))
    }

    /// Queues `write`; the answer comes once it is written (or its failure logged).
    pub fn write(&self, write: AttemptWrite) -> oneshot::Receiver<()> {
        let (written, done) = oneshot::channel();
        if let Err(e) = self.queue.send(Queued { write, written }) {
            let w = &e.0.write;
            tracing::warn!(
                contact = w.contact_id,
                result = %w.attempt.result,
                "attempt not written: the writer has stopped"
            );
        }
        done
    }
}

/// The writer: writes queued attempts a batch per transaction until every sender is gone.
async fn write_batches(store: Store, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let (writes, written): (Vec<AttemptWrite>, Vec<oneshot::Sender<()>>) =
            batch.drain(..).map(|q| (q.write, q.written)).unzip();
        if let Err(e) = store.record_attempts(&writes, ACTOR).await {
            // One bad attempt must not lose the others: each alone, failures logged.
            tracing::warn!(error = %e, attempts = writes.len(), "batch of attempts failed; writing each alone");
            for w in &writes {
                if let Err(e) = store.record_attempts(std::slice::from_ref(w), ACTOR).await {
                    tracing::warn!(contact = w.contact_id, error = %e, "call not written on its contact");
                    if let Err(e) = store.release_lease(w.contact_id).await {
                        tracing::warn!(contact = w.contact_id, error = %e, "lease not released");
                    }
                }
            }
        }
        for w in written {
            let _ = w.send(());
        }
    }
}
