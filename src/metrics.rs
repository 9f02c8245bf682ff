//! The Prometheus registry every subsystem registers its metrics in.

use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

/// Errors registering metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A collector could not be registered (a name clash).
    #[error("cannot register metric: {0}")]
    Register(#[from] prometheus::Error),
}

/// The daemon's metrics registry, shared by every subsystem.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A registry holding the process collector and `dialerd_build_info`; every series it
    /// serves carries the label `node` (this node's name), so that the series of nodes
    /// sharing one store stay apart wherever they are scraped from.
    pub fn new(node: &str) -> Result<Self, MetricsError> {
        let labels = std::collections::HashMap::from([("node".to_string(), node.to_string())]);
        let registry = Registry::new_custom(None, Some(labels))?;
        // CPU, RSS, virtual memory, open and max fds, start time, threads.
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let build = IntGaugeVec::new(
            Opts::new(
                "dialerd_build_info",
                "Build of the running daemon; the value is always 1.",
            ),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build))?;
        Ok(Self { registry })
    }

    /// The registry, for subsystems to register their own collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a bad family is skipped by the encoder.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_build_info_and_process_metrics_labelled_with_the_node() {
        let text = Metrics::new("n-1").unwrap().render();
        let line = format!(
            "dialerd_build_info{{version=\"{}\",node=\"n-1\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&line), "{text}");
        assert!(
            text.contains("process_resident_memory_bytes{node=\"n-1\"} "),
            "{text}"
        );
        assert!(text.contains("process_open_fds{node=\"n-1\"} "), "{text}");
        let samples = text.lines().filter(|l| !l.starts_with('#'));
        for l in samples {
            assert!(l.contains("node=\"n-1\""), "{l}");
        }
    }
}
