//! Logs (tracing) and metrics (Prometheus at `GET /metrics`). Every metric name is
//! declared once here, with its description.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Metric names.
pub mod metric {
    /// Counter: HTTP requests by route pattern, method and status.
    pub const HTTP_REQUESTS: &str = "seatkeeper_http_requests_total";
    /// Histogram: HTTP request duration by route pattern.
    pub const HTTP_DURATION: &str = "seatkeeper_http_request_duration_seconds";
    /// Counter: acquires by outcome ([`super::Outcome`]).
    pub const ACQUIRES: &str = "seatkeeper_acquires_total";
    /// Counter: leases ended, by reason (released, expired, ended, …).
    pub const SESSIONS_ENDED: &str = "seatkeeper_sessions_ended_total";
    /// Gauge: live leases across all organizations.
    pub const SESSIONS_LIVE: &str = "seatkeeper_sessions_live";
    /// Gauge: live leases of one pool (labels org, pool, product).
    pub const POOL_LIVE: &str = "seatkeeper_pool_sessions_live";
    /// Gauge: seats of one pool.
    pub const POOL_SEATS: &str = "seatkeeper_pool_seats";
    /// Gauge: seats of one pool allocated to members (named), or its entitled list.
    pub const POOL_ALLOCATED: &str = "seatkeeper_pool_seats_allocated";
    /// Gauge: pools left without series of their own by the series limit.
    pub const POOLS_UNLABELLED: &str = "seatkeeper_pools_without_series";
    /// Gauge: organizations served.
    pub const ORGS: &str = "seatkeeper_orgs";
    /// Gauge: messages sent to organization actors and not yet answered.
    pub const MAILBOX_DEPTH: &str = "seatkeeper_actor_mailbox_depth";
    /// Histogram: time of one group-commit write (batch apply + flush).
    pub const STORE_FLUSH_SECONDS: &str = "seatkeeper_store_flush_seconds";
    /// Histogram: writes (appends, snapshots, barriers) in one flush.
    pub const STORE_BATCH_SIZE: &str = "seatkeeper_store_batch_size";
    /// Gauge: seconds the last start took to recover the store.
    pub const RECOVERY_SECONDS: &str = "seatkeeper_recovery_seconds";
}

/// How an acquire ended, the `outcome` label of [`metric::ACQUIRES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new lease at once.
    Granted,
    /// The same fingerprint's live lease, extended.
    Renewed,
    /// A new lease after queueing for it.
    Waited,
    /// Refused at once: every seat taken (409 `seat_cap_reached`).
    CapReached,
    /// Queued and no seat freed in time.
    TimedOut,
    /// No entitlement (403), or only expired pools (409 `pool_expired`).
    NotEntitled,
    /// Too many queued acquires (429).
    RateLimited,
    /// Anything else: invalid values, a revoked key, the organization deleted.
    Other,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Renewed => "renewed",
            Outcome::Waited => "waited",
            Outcome::CapReached => "cap_reached",
            Outcome::TimedOut => "timed_out",
            Outcome::NotEntitled => "not_entitled",
            Outcome::RateLimited => "rate_limited",
            Outcome::Other => "other",
        }
    }

    const ALL: [Outcome; 8] = [
        Outcome::Granted,
        Outcome::Renewed,
        Outcome::Waited,
        Outcome::CapReached,
        Outcome::TimedOut,
        Outcome::NotEntitled,
        Outcome::RateLimited,
        Outcome::Other,
    ];

    /// Counts one acquire so ended (through handles each thread keeps: this is on the
    /// acquire path).
    pub fn count(self) {
        thread_local! {
            static COUNTERS: [metrics::Counter; 8] = Outcome::ALL
                .map(|o| metrics::counter!(metric::ACQUIRES, "outcome" => o.as_str()));
        }
        COUNTERS.with(|c| c[self as usize].increment(1));
    }
}

/// Process-wide figures kept in atomics by whoever changes them and copied into their
/// gauges by the upkeep thread: gauges the exporter forgets when idle (so a deleted
/// pool's series goes away) must be set again regularly.
pub struct Figures {
    /// Live leases, all organizations.
    pub leases: Padded<AtomicI64>,
    /// Organizations served.
    pub orgs: AtomicI64,
    /// Messages sent to org actors and not yet answered.
    pub mailbox: Padded<AtomicI64>,
    /// Pools that have a series of their own.
    pub labelled_pools: AtomicUsize,
    /// Pools refused one by the limit.
    pub unlabelled_pools: AtomicI64,
    /// Most pools with series of their own.
    pub pool_series_limit: AtomicUsize,
    /// The last recovery, in microseconds.
    pub recovery_micros: AtomicU64,
}

impl Figures {
    /// All zero, with room for `pool_series_limit` pools' series.
    const fn new(pool_series_limit: usize) -> Figures {
        Figures {
            leases: Padded(AtomicI64::new(0)),
            orgs: AtomicI64::new(0),
            mailbox: Padded(AtomicI64::new(0)),
            labelled_pools: AtomicUsize::new(0),
            unlabelled_pools: AtomicI64::new(0),
            pool_series_limit: AtomicUsize::new(pool_series_limit),
            recovery_micros: AtomicU64::new(0),
        }
    }
}

/// A value on a cache line (pair) of its own: the figures changed on every request do
/// not make the cores fight over the line the others share.
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The process's figures.
pub fn figures() -> &'static Figures {
    static FIGURES: Figures = Figures::new(1000);
    &FIGURES
}

impl Figures {
    /// Takes a place for one pool's series; false once the limit is reached.
    pub fn admit_pool(&self) -> bool {
        let admitted = self.take_place();
        if !admitted {
            self.unlabelled_pools.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Tries again for a pool refused a place; true if it has one now.
    pub fn readmit_pool(&self) -> bool {
        let admitted = self.take_place();
        if admitted {
            self.unlabelled_pools.fetch_sub(1, Ordering::Relaxed);
        }
        admitted
    }

    fn take_place(&self) -> bool {
        let limit = self.pool_series_limit.load(Ordering::Relaxed);
        self.labelled_pools
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a pool's place (`labelled`: whether it had one).
    pub fn release_pool(&self, labelled: bool) {
        if labelled {
            self.labelled_pools.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.unlabelled_pools.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn publish(&self) {
        let gauge = |name: &'static str, v: f64| metrics::gauge!(name).set(v);
        gauge(
            metric::SESSIONS_LIVE,
            self.leases.load(Ordering::Relaxed) as f64,
        );
        gauge(metric::ORGS, self.orgs.load(Ordering::Relaxed) as f64);
        gauge(
            metric::MAILBOX_DEPTH,
            self.mailbox.load(Ordering::Relaxed) as f64,
        );
        gauge(
            metric::POOLS_UNLABELLED,
            self.unlabelled_pools.load(Ordering::Relaxed) as f64,
        );
        gauge(
            metric::RECOVERY_SECONDS,
            self.recovery_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
    }
}

/// The exposition, with the process figures as of now.
pub fn render() -> String {
    figures().publish();
    prometheus().render()
}

/// How often pool gauges and the process figures are set again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A gauge not set for this long is dropped from `/metrics` (a deleted pool's series).
const GAUGE_IDLE: Duration = Duration::from_secs(30);

/// Installs the log subscriber: a `RUST_LOG`-style filter, lines as text or JSON.
pub fn init_logs(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
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
                figures().publish();
                upkeep.run_upkeep();
                std::thread::sleep(REFRESH);
            })
            .expect("spawn metrics upkeep");
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        metric::HTTP_REQUESTS,
        "HTTP requests by route pattern, method and status"
    );
    describe_histogram!(
        metric::HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration by route pattern"
    );
    describe_counter!(
        metric::ACQUIRES,
        "acquires by outcome: granted, renewed, waited, cap_reached, timed_out, not_entitled, rate_limited, other"
    );
    describe_counter!(
        metric::SESSIONS_ENDED,
        "leases ended, by reason (expired: reaped at expiry)"
    );
    describe_gauge!(metric::SESSIONS_LIVE, "live leases, all organizations");
    describe_gauge!(
        metric::POOL_LIVE,
        "live leases of a pool (set every 5 s; pools past metrics.max_pool_series have none)"
    );
    describe_gauge!(metric::POOL_SEATS, "seats of a pool");
    describe_gauge!(
        metric::POOL_ALLOCATED,
        "seats of a named pool allocated to members; a floating pool's entitled list"
    );
    describe_gauge!(
        metric::POOLS_UNLABELLED,
        "pools without series of their own (over metrics.max_pool_series)"
    );
    describe_gauge!(metric::ORGS, "organizations served");
    describe_gauge!(
        metric::MAILBOX_DEPTH,
        "messages sent to organization actors and not yet answered"
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
    describe_gauge!(
        metric::RECOVERY_SECONDS,
        Unit::Seconds,
        "time the last start took to recover the store"
    );
}

#[cfg(test)]
mod tests {
    use super::{Figures, Outcome};
    use std::sync::atomic::Ordering;

    /// One place: the second pool is refused and counted without series, gets the place
    /// once the first gives it back, and both counts end at zero.
    #[test]
    fn a_refused_pool_gets_a_series_once_a_place_frees() {
        let f = Figures::new(1);
        let counts = |f: &Figures| {
            (
                f.labelled_pools.load(Ordering::Relaxed),
                f.unlabelled_pools.load(Ordering::Relaxed),
            )
        };
        assert!(f.admit_pool());
        assert!(!f.admit_pool());
        assert_eq!(counts(&f), (1, 1));
        assert!(!f.readmit_pool(), "no place free yet");
        assert_eq!(counts(&f), (1, 1));
        f.release_pool(true);
        assert!(f.readmit_pool());
        assert_eq!(counts(&f), (1, 0));
        f.release_pool(true);
        assert_eq!(counts(&f), (0, 0));
    }

    /// `count` indexes its handles by discriminant: `ALL` must list them in order.
    #[test]
    fn outcomes_are_listed_in_discriminant_order() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
    }
}
