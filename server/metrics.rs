//! Prometheus metrics, rendered as text at `/metrics`. Aggregates only:
//! outcomes per push-service origin, fan-out durations, queue depths.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    /// Delivery attempts by outcome and push-service origin.
    pub deliveries: IntCounterVec,
    /// Time from a message's publication to the end of its fan-out walk.
    pub fanout_seconds: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let deliveries = IntCounterVec::new(
            Opts::new("herold_push_deliveries_total", "Push delivery attempts by outcome and push-service origin"),
            &["outcome", "origin"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let fanout_seconds = HistogramVec::new(
            HistogramOpts::new("herold_fanout_duration_seconds", "From publication to the end of a message's fan-out")
                .buckets(vec![0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0]),
            &["kind"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        for collector in
            [Box::new(deliveries.clone()) as Box<dyn prometheus::core::Collector>, Box::new(fanout_seconds.clone())]
        {
            registry.register(collector).unwrap_or_else(|e| panic!("metric registration: {e}"));
        }
        Metrics { registry, deliveries, fanout_seconds }
    }

    /// The text exposition, with the queue gauges appended (read from the
    /// database at scrape time, so every instance reports the shared queue).
    pub fn render(&self, due_jobs: i64, scheduled_jobs: i64, retries: i64) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        let mut text = String::from_utf8(buffer).unwrap_or_default();
        text.push_str(&format!(
            "# HELP herold_fanout_queue_depth Fan-out jobs not finished, by state\n\
             # TYPE herold_fanout_queue_depth gauge\n\
             herold_fanout_queue_depth{{state=\"due\"}} {due_jobs}\n\
             herold_fanout_queue_depth{{state=\"scheduled\"}} {scheduled_jobs}\n\
             # HELP herold_push_retry_queue_depth Deliveries waiting for a retry\n\
             # TYPE herold_push_retry_queue_depth gauge\n\
             herold_push_retry_queue_depth {retries}\n"
        ));
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
