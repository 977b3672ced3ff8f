//! What an operator alerts on, in Prometheus conventions (base units, `_seconds`, `_total`):
//! request durations by route template, method and status class; statement durations by
//! statement; the wait for a pooled connection; and the counters and gauges of the cache and the
//! pool. One registry per application, built in `startup`, so that two applications in one process
//! (as in the tests) never mix their figures.
//!
//! The hot path pays a clock read and one uncontended lock per histogram; the label sets are
//! static strings, so finding a series allocates nothing.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::cell::RefCell;
use std::time::Duration;

/// Upper bounds, in seconds, from 100 µs (a cached read) to 5 s (past any configured timeout).
const BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Status classes, by `status / 100 - 1`.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/reviews/{product_id}/list`), never the raw path, so a series per
    /// product id cannot grow without bound; `none` for a path no route matched.
    pub route: &'static str,
    pub method: &'static str,
    /// `2xx` … `5xx`.
    pub status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatementLabels {
    /// The statement's file in sql/, without `.sql`.
    pub statement: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

/// The figures of the database layer.
#[derive(Clone)]
pub struct DbMetrics {
    pub statement_seconds: Histograms<StatementLabels>,
    pub pool_wait_seconds: Histogram,
}

impl DbMetrics {
    pub fn statement(&self, statement: &'static str, took: Duration) {
        self.statement_seconds
            .get_or_create(&StatementLabels { statement })
            .observe(took.as_secs_f64());
    }
}

/// The figures of the body cache.
#[derive(Clone, Default)]
pub struct CacheMetrics {
    pub hits: Counter,
    pub misses: Counter,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Histograms<RequestLabels>,
    /// One counter per status class, `1xx` to `5xx`, made up front: every class shows from the
    /// first scrape, and counting one costs no lookup.
    responses: [Counter; 5],
    pub db: DbMetrics,
    pub cache: CacheMetrics,
    /// Set from the cache and the pool when scraped.
    pub cache_entries: Gauge,
    pub cache_bytes: Gauge,
    pub cache_listening: Gauge,
    pub pool_connections: Family<StateLabels, Gauge>,
    pub pool_waiting: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("reviews");
        let requests: Histograms<RequestLabels> = Family::new_with_constructor(histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response, by route template, method and status class",
            Unit::Seconds,
            requests.clone(),
        );
        let by_class = Family::<ClassLabels, Counter>::default();
        registry.register(
            "http_responses",
            "HTTP responses by status class",
            by_class.clone(),
        );
        let responses = CLASSES.map(|class| by_class.get_or_create(&ClassLabels { class }).clone());
        let db = DbMetrics {
            statement_seconds: Family::new_with_constructor(histogram),
            pool_wait_seconds: histogram(),
        };
        registry.register_with_unit(
            "db_statement_duration",
            "Time a statement took on its connection, from sending it to its last row",
            Unit::Seconds,
            db.statement_seconds.clone(),
        );
        registry.register_with_unit(
            "db_pool_wait",
            "Time a statement waited for a database connection",
            Unit::Seconds,
            db.pool_wait_seconds.clone(),
        );
        let cache = CacheMetrics::default();
        registry.register(
            "cache_hits",
            "Read requests answered from the body cache",
            cache.hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Read requests that asked the database (cache on but cold, stale or not listening)",
            cache.misses.clone(),
        );
        let metrics = Metrics {
            registry,
            requests,
            responses,
            db,
            cache,
            cache_entries: Gauge::default(),
            cache_bytes: Gauge::default(),
            cache_listening: Gauge::default(),
            pool_connections: Family::default(),
            pool_waiting: Gauge::default(),
        };
        metrics.with_gauges()
    }

    fn with_gauges(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "cache_entries",
            "Bodies held in the cache",
            self.cache_entries.clone(),
        );
        r.register_with_unit(
            "cache",
            "Weighed size of the cached bodies",
            Unit::Bytes,
            self.cache_bytes.clone(),
        );
        r.register(
            "cache_listening",
            "1 while this instance hears other instances' writes (LISTEN connection up)",
            self.cache_listening.clone(),
        );
        r.register(
            "db_pool_connections",
            "Database connections by state",
            self.pool_connections.clone(),
        );
        r.register(
            "db_pool_waiting",
            "Requests waiting for a database connection",
            self.pool_waiting.clone(),
        );
        self
    }

    /// Counts a response by its status class; returns the class's index for [`CLASSES`].
    pub fn count(&self, status: u16) -> usize {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].inc();
        class
    }

    /// The duration histogram of one route, method and status class (a handle on the series the
    /// registry reports: observing it is all a response costs once it is found).
    pub fn requests(&self, route: &'static str, method: &'static str, class: usize) -> Histogram {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status: CLASSES[class],
            })
            .clone()
    }

    /// The Prometheus text exposition (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A resource's route template, as the metrics label it, and the duration histograms of its
/// responses so far, by method and status class: found once per worker in the registry, then by
/// a scan of a few pointers instead of hashing the labels on every request.
pub struct Route {
    pub template: &'static str,
    series: RefCell<Vec<(&'static str, usize, Histogram)>>,
}

impl Route {
    pub fn new(template: &'static str) -> Route {
        Route {
            template,
            series: RefCell::default(),
        }
    }

    /// A response of this route to `method` in status `class` took `seconds`.
    pub fn observe(&self, metrics: &Metrics, method: &'static str, class: usize, seconds: f64) {
        let mut series = self.series.borrow_mut();
        match series
            .iter()
            .find(|(m, c, _)| std::ptr::eq(*m, method) && *c == class)
        {
            Some((_, _, histogram)) => histogram.observe(seconds),
            None => {
                let histogram = metrics.requests(self.template, method, class);
                histogram.observe(seconds);
                series.push((method, class, histogram));
            }
        }
    }
}
