//! Metrics of the REST API: requests by route and status, their duration, and imports.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Counters and histograms of the API.
#[derive(Clone)]
pub struct ApiMetrics {
    /// `dialerd_api_requests_total{route,code}`
    pub requests: IntCounterVec,
    /// `dialerd_api_request_seconds{route}`
    pub seconds: HistogramVec,
    /// `dialerd_imports_total`
    pub imports: IntCounter,
    /// `dialerd_import_rows_total{result}`: inserted, bad, duplicate.
    pub import_rows: IntCounterVec,
}

impl ApiMetrics {
    /// Creates and registers the API metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "dialerd_api_requests_total",
                    "REST API requests answered, by route and status code.",
                ),
                &["route", "code"],
            )?,
            seconds: HistogramVec::new(
                HistogramOpts::new(
                    "dialerd_api_request_seconds",
                    "Time to answer a REST API request, by route.",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0,
                ]),
                &["route"],
            )?,
            imports: IntCounter::new(
                "dialerd_imports_total",
                "CSV imports finished (done or failed).",
            )?,
            import_rows: IntCounterVec::new(
                Opts::new(
                    "dialerd_import_rows_total",
                    "CSV rows imported, by result: inserted, bad, duplicate.",
                ),
                &["result"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        registry.register(Box::new(m.imports.clone()))?;
        registry.register(Box::new(m.import_rows.clone()))?;
        for result in ["inserted", "bad", "duplicate"] {
            m.import_rows.with_label_values(&[result]);
        }
        Ok(m)
    }
}

/// Middleware: counts and times each request under its route template.
pub async fn observe(State(m): State<ApiMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    m.seconds
        .with_label_values(&[&route])
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[route.as_str(), resp.status().as_str()])
        .inc();
    resp
}
