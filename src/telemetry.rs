//! Logs (tracing) and metrics (Prometheus at `GET /metrics`). Every metric name is
//! declared once here, with its description.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Metric names.
pub mod metric {
    /// Counter: HTTP requests by route pattern, method and status.
    pub const HTTP_REQUESTS: &str = "seatkeeper_http_requests_total";
    /// Histogram: HTTP request duration by route pattern.
    pub const HTTP_DURATION: &str = "seatkeeper_http_request_duration_seconds";
    /// Histogram: time of one group-commit write (batch apply + flush).
    pub const STORE_FLUSH_SECONDS: &str = "seatkeeper_store_flush_seconds";
    /// Histogram: writes (appends, snapshots, barriers) in one flush.
    pub const STORE_BATCH_SIZE: &str = "seatkeeper_store_batch_size";
    /// Counter: leases granted.
    pub const SESSIONS_GRANTED: &str = "seatkeeper_sessions_granted_total";
    /// Counter: acquires refused because every seat was taken.
    pub const SESSIONS_DENIED: &str = "seatkeeper_sessions_denied_total";
    /// Counter: leases ended, by reason (released, expired, ended).
    pub const SESSIONS_ENDED: &str = "seatkeeper_sessions_ended_total";
    /// Gauge: live leases across all organizations.
    pub const SESSIONS_LIVE: &str = "seatkeeper_sessions_live";
}

/// Installs the log subscriber with a `RUST_LOG`-style filter.
pub fn init_logs(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init();
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("seconds".into()),
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                    1.0, 5.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(metric::STORE_BATCH_SIZE.into()),
                    &[
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
                    ],
                )
            })
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may exist when several apps share a process (tests); the
        // handle still renders this one.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            })
            .expect("spawn metrics upkeep");
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        metric::HTTP_REQUESTS,
        "HTTP requests by route, method and status"
    );
    describe_histogram!(
        metric::HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration by route"
    );
    describe_histogram!(
        metric::STORE_FLUSH_SECONDS,
        Unit::Seconds,
        "one group-commit batch write and flush"
    );
    describe_histogram!(
        metric::STORE_BATCH_SIZE,
        "writes (appends, snapshots, barriers) in one flush"
    );
    describe_counter!(metric::SESSIONS_GRANTED, "leases granted");
    describe_counter!(
        metric::SESSIONS_DENIED,
        "acquires refused: every seat taken"
    );
    describe_counter!(metric::SESSIONS_ENDED, "leases ended, by reason");
    describe_gauge!(metric::SESSIONS_LIVE, "live leases");
}
