//! DNS for SIP trunks (RFC 3263): NAPTR, then SRV, then A/AAAA.
//!
//! The queries, the cache and the TTLs are hickory-resolver's (servers and options from
//! `/etc/resolv.conf`, or the configured `sip.dns_servers`; names in `/etc/hosts` answer too).
//! What stays ours is the thin SIP layer: which NAPTR record names the SRV name for a
//! transport, the RFC 2782 ordering of SRV targets (priority, then a weighted random pick), and
//! the ports. A [`Resolution`] says until when its targets are valid, so the endpoint can
//! resolve a trunk again when its records expire.

use super::id::random_u32;
use crate::sip::transport::Transport;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The SIP port when neither the URI nor an SRV record names one (RFC 3261 §19.1.2).
pub const SIP_PORT: u16 = 5060;
/// The default port of SIP over TLS.
pub const SIPS_PORT: u16 = 5061;
/// Shortest time an answer is used before asking again, whatever its TTL (0 included).
pub const MIN_TTL: Duration = Duration::from_secs(5);
/// Longest time an answer is used before asking again, whatever its TTL.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The name cannot be asked for (empty, a label too long, …).
    #[error("invalid dns name {0:?}")]
    InvalidName(String),
    /// The resolver could not be set up from the system's configuration.
    #[error("dns configuration: {0}")]
    Config(String),
    /// The lookup failed: no such name, no records, or no server answered.
    #[error("dns lookup of {name}: {reason}")]
    Lookup {
        /// The name asked for.
        name: String,
        /// The resolver's reason.
        reason: String,
    },
    /// The name exists but none of its targets has an address.
    #[error("no address for {0}")]
    NoAnswer(String),
}

/// An SRV record's data (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share among records of the same priority.
    pub weight: u16,
    /// Port of the service on the target.
    pub port: u16,
    /// Host name of the target; "." means the service is not offered.
    pub target: String,
}

/// A NAPTR record's data as RFC 3263 §4.1 reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    /// Lower is tried first.
    pub order: u16,
    /// Lower is preferred among equal orders.
    pub preference: u16,
    /// Flags; SIP uses "s" (the replacement is an SRV name).
    pub flags: String,
    /// Service, e.g. `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`.
    pub service: String,
    /// The SRV name to ask next.
    pub replacement: String,
}

/// Where a trunk's requests go, in the order to try them, and until when that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Addresses in RFC 3263 order: the first is used, the next ones on failure.
    pub targets: Vec<SocketAddr>,
    /// When to resolve again (the records' TTL, within [`MIN_TTL`] and [`MAX_TTL`]).
    pub valid_until: Instant,
}

/// The NAPTR service naming `transport` (RFC 3263 §4.1).
fn naptr_service(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "SIP+D2U",
        Transport::Tcp => "SIP+D2T",
        Transport::Tls => "SIPS+D2T",
    }
}

/// The SRV name that `records` give for `transport`: among the records with flag "s" and its
/// service, the lowest order, then the lowest preference. `None` when none fits.
pub fn naptr_srv_name(records: &[NaptrRecord], transport: Transport) -> Option<String> {
    let service = naptr_service(transport);
    records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s") && r.service.eq_ignore_ascii_case(service))
        .filter(|r| !is_root(&r.replacement))
        .min_by_key(|r| (r.order, r.preference))
        .map(|r| trim_dot(&r.replacement).to_string())
}

/// Orders SRV records for trying (RFC 2782): priority ascending; within a priority, a weighted
/// random pick repeated until none are left, `random` giving the random numbers. Targets of "."
/// (service not offered) are dropped.
pub fn order_srv(records: &[SrvRecord], mut random: impl FnMut() -> u32) -> Vec<SrvRecord> {
    let mut pending: Vec<SrvRecord> = records
        .iter()
        .filter(|r| !is_root(&r.target))
        .cloned()
        .collect();
    // Stable sort: same-priority records keep message order, zero weights first as the RFC asks.
    pending.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(pending.len());
    while let Some(first) = pending.first() {
        let priority = first.priority;
        let group_len = pending
            .iter()
            .take_while(|r| r.priority == priority)
            .count();
        let mut group: Vec<SrvRecord> = pending.drain(..group_len).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            // Uniform in 0..=total; total ≤ 65535 × 65535 < u32::MAX, so +1 cannot overflow.
            let pick = random() % (total + 1);
            let mut running = 0u32;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(group.len() - 1);
            out.push(group.remove(index));
        }
    }
    out
}

/// A stub resolver for trunk hosts, applying RFC 3263's NAPTR → SRV → A/AAAA steps.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    /// A resolver asking `servers` (UDP, then TCP for truncated replies), or the servers of
    /// `/etc/resolv.conf` when `servers` is empty.
    pub fn new(servers: &[SocketAddr]) -> Result<Self, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let local = [SocketAddr::from(([127, 0, 0, 1], 53))];
        let servers = match servers {
            [] => match TokioResolver::builder(provider.clone()) {
                Ok(builder) => return Self::built(builder),
                Err(e) => {
                    // A host without /etc/resolv.conf (a minimal container) still resolves
                    // names in /etc/hosts, and asks a local resolver if there is one.
                    tracing::warn!(error = %e, "no system DNS configuration; asking 127.0.0.1:53");
                    &local[..]
                }
            },
            listed => listed,
        };
        let builder = {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                        .into_iter()
                        .map(|mut c| {
                            c.port = s.port();
                            c
                        })
                        .collect();
                    NameServerConfig::new(s.ip(), true, connections)
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                provider,
            )
        };
        Self::built(builder)
    }

    fn built(
        builder: hickory_resolver::ResolverBuilder<TokioRuntimeProvider>,
    ) -> Result<Self, DnsError> {
        let inner = builder
            .build()
            .map_err(|e| DnsError::Config(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Where to send SIP requests for `host` (RFC 3263 §4.2): an IP literal with `port` or
    /// 5060 (5061 over TLS); with an explicit `port`, the A/AAAA addresses of `host`;
    /// otherwise the SRV name a NAPTR record gives for `transport` (or `_sip._udp`,
    /// `_sip._tcp`, `_sips._tcp`), its targets in RFC 2782 order with their ports, or, without
    /// SRV records, the addresses of `host` on the default port.
    pub async fn resolve_sip(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Transport,
    ) -> Result<Resolution, DnsError> {
        // TLS: `_sips._tcp` and 5061 (RFC 3261 §26.2, RFC 3263 §4.2).
        let default_port = match transport {
            Transport::Tls => SIPS_PORT,
            _ => SIP_PORT,
        };
        if let Some(ip) = ip_literal(host) {
            return Ok(Resolution {
                targets: vec![SocketAddr::new(ip, port.unwrap_or(default_port))],
                valid_until: Instant::now() + MAX_TTL,
            });
        }
        let host = trim_dot(host);
        if host.is_empty() || host == "." {
            return Err(DnsError::InvalidName(host.to_string()));
        }
        let fqdn = |name: &str| format!("{}.", trim_dot(name));
        if let Some(port) = port {
            let (ips, until) = self.ips(&fqdn(host)).await?;
            return Ok(resolution(with_port(ips, port).collect(), until));
        }
        let mut until = Instant::now() + MAX_TTL;
        let srv_name = match self.naptr(&fqdn(host), transport).await {
            Some((name, valid)) => {
                until = until.min(valid);
                name
            }
            None => {
                let service = match transport {
                    Transport::Udp => "_sip._udp",
                    Transport::Tcp => "_sip._tcp",
                    Transport::Tls => "_sips._tcp",
                };
                format!("{service}.{host}")
            }
        };
        let records = match self.inner.lookup(fqdn(&srv_name), RecordType::SRV).await {
            Ok(lookup) => {
                until = until.min(lookup.valid_until());
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::SRV(s) => Some(SrvRecord {
                            priority: s.priority,
                            weight: s.weight,
                            port: s.port,
                            target: s.target.to_ascii(),
                        }),
                        _ => None,
                    })
                    .collect()
            }
            Err(e) => {
                tracing::debug!(name = %srv_name, error = %e, "no sip srv, trying a/aaaa");
                Vec::new()
            }
        };
        if records.is_empty() {
            let (ips, valid) = self.ips(&fqdn(host)).await?;
            return Ok(resolution(
                with_port(ips, default_port).collect(),
                until.min(valid),
            ));
        }
        let mut out = Vec::new();
        let mut last = DnsError::NoAnswer(srv_name.clone());
        for srv in order_srv(&records, random_u32) {
            match self.ips(&fqdn(&srv.target)).await {
                Ok((ips, valid)) => {
                    until = until.min(valid);
                    out.extend(with_port(ips, srv.port));
                }
                Err(e) => {
                    tracing::debug!(target = %srv.target, error = %e, "srv target unresolved");
                    last = e;
                }
            }
        }
        if out.is_empty() {
            return Err(last);
        }
        Ok(resolution(dedup(out), until))
    }

    /// The SRV name that `host`'s NAPTR records give for `transport`, and until when.
    async fn naptr(&self, host: &str, transport: Transport) -> Option<(String, Instant)> {
        let lookup = self.inner.lookup(host, RecordType::NAPTR).await.ok()?;
        let records: Vec<NaptrRecord> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::NAPTR(n) => Some(NaptrRecord {
                    order: n.order,
                    preference: n.preference,
                    flags: String::from_utf8_lossy(&n.flags).into_owned(),
                    service: String::from_utf8_lossy(&n.services).into_owned(),
                    replacement: n.replacement.to_ascii(),
                }),
                _ => None,
            })
            .collect();
        naptr_srv_name(&records, transport).map(|name| (name, lookup.valid_until()))
    }

    /// Addresses of `host` (A and AAAA, IPv4 first), and until when.
    async fn ips(&self, host: &str) -> Result<(Vec<IpAddr>, Instant), DnsError> {
        let lookup = self
            .inner
            .lookup_ip(host)
            .await
            .map_err(|e| DnsError::Lookup {
                name: trim_dot(host).to_string(),
                reason: e.to_string(),
            })?;
        let ips = dedup(lookup.iter().collect::<Vec<_>>());
        if ips.is_empty() {
            return Err(DnsError::NoAnswer(trim_dot(host).to_string()));
        }
        Ok((ips, lookup.valid_until()))
    }
}

/// `targets` valid until `until`, kept within [`MIN_TTL`] and [`MAX_TTL`] from now.
fn resolution(targets: Vec<SocketAddr>, until: Instant) -> Resolution {
    let now = Instant::now();
    Resolution {
        targets,
        valid_until: until.clamp(now + MIN_TTL, now + MAX_TTL),
    }
}

/// `ips` each on `port`.
fn with_port(ips: Vec<IpAddr>, port: u16) -> impl Iterator<Item = SocketAddr> {
    ips.into_iter().map(move |ip| SocketAddr::new(ip, port))
}

/// `name` without its trailing dot (the root stays ".").
fn trim_dot(name: &str) -> &str {
    match name.strip_suffix('.') {
        Some("") | None => name,
        Some(trimmed) => trimmed,
    }
}

/// The root name, an SRV target or NAPTR replacement meaning "not offered here".
fn is_root(name: &str) -> bool {
    name == "." || name.is_empty()
}

/// `host` as an IP address, if it is a literal (IPv6 possibly in brackets, as in SIP URIs).
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Removes later duplicates, keeping order.
fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests;
