//! The media engine: what every media leg shares — the RTP port pool, the codec preferences,
//! the prompt cache and the metrics. Cheap to clone.

use super::codec::CodecKind;
use super::leg::MediaLeg;
use super::metrics::MediaMetrics;
use super::ports::PortPool;
use super::prompt::PromptCache;
use super::sdp::negotiate::CodecPref;
use super::MediaError;
use crate::config::MediaConfig;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Shared media state; one per daemon.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PortPool,
    prefs: Vec<CodecPref>,
    prompts: PromptCache,
    language: String,
    rtp_timeout: Duration,
    metrics: MediaMetrics,
}

impl MediaEngine {
    /// Loads the prompts and registers the metrics; errors name the directory or file.
    pub fn new(cfg: &MediaConfig, registry: &prometheus::Registry) -> Result<Self, MediaError> {
        let prompts = PromptCache::load(&cfg.prompts_dir)?;
        let metrics = MediaMetrics::register(registry)?;
        let pool = PortPool::new(cfg.rtp_port_min, cfg.rtp_port_max);
        metrics.ports_free.set(pool.free() as i64);
        let prefs = cfg
            .codecs
            .iter()
            .filter_map(|c| CodecKind::from_name(c))
            .map(|c| CodecPref::new(c.name()))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                prefs,
                prompts,
                language: cfg.language.clone(),
                rtp_timeout: cfg.rtp_timeout,
                metrics,
            }),
        })
    }

    /// A new leg with RTP and RTCP sockets on `ip`; [`MediaError::NoPorts`] when the pool is
    /// empty (the call gets 503).
    pub fn open(&self, ip: IpAddr) -> Result<MediaLeg, MediaError> {
        let pair = self.inner.pool.bind(ip)?.ok_or(MediaError::NoPorts)?;
        self.inner
            .metrics
            .ports_free
            .set(self.inner.pool.free() as i64);
        MediaLeg::new(self.clone(), pair)
    }

    /// A new leg on an in-process link instead of sockets, and the link's other end for the
    /// driver that feeds it (a browser leg's WebRTC stack); it takes no port from the pool.
    pub fn open_piped(&self) -> Result<(MediaLeg, super::pipe::PipeEnd), MediaError> {
        MediaLeg::piped(self.clone())
    }

    /// A bare RTP/RTCP socket pair from the pool on `ip`, for a leg that is not a [`MediaLeg`]
    /// (a browser's ICE/DTLS transport); the port goes back when the pair's lease is dropped.
    pub fn bind_pair(&self, ip: IpAddr) -> Result<super::ports::PortPair, MediaError> {
        let pair = self.inner.pool.bind(ip)?.ok_or(MediaError::NoPorts)?;
        self.update_free_ports();
        Ok(pair)
    }

    /// Codecs in preference order.
    pub fn prefs(&self) -> &[CodecPref] {
        &self.inner.prefs
    }

    /// The prompts.
    pub fn prompts(&self) -> &PromptCache {
        &self.inner.prompts
    }

    /// Prompt language when a call names none.
    pub fn language(&self) -> &str {
        &self.inner.language
    }

    /// Dead-leg timeout (`0s`: never).
    pub fn rtp_timeout(&self) -> Duration {
        self.inner.rtp_timeout
    }

    /// The metrics.
    pub fn metrics(&self) -> &MediaMetrics {
        &self.inner.metrics
    }

    /// Refreshes the free-ports gauge (after a leg gave its port back).
    pub fn update_free_ports(&self) {
        self.inner
            .metrics
            .ports_free
            .set(self.inner.pool.free() as i64);
    }
}
