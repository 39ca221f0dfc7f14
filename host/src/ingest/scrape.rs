//! Scraping: pulls Prometheus exposition text from the static targets of the server config's
//! `[[scrape]]` jobs, the way Prometheus does, so a detector can fire on a dead target.
//!
//! ```toml
//! [[scrape]]
//! job = "node"
//! targets = ["127.0.0.1:9100"]
//! interval = "15s"          # default 1m
//! timeout = "5s"            # default 10s, at most `interval`
//! labels = { env = "prod" } # extra target labels
//! ```
//!
//! Each series gets the target's labels (`job`, `instance` = the address, and the extra
//! ones) with Prometheus's `honor_labels: false` semantics: where a scraped series already has
//! one of them, its value moves to `exported_<name>`. Every scrape also writes Prometheus's
//! `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` (the same: there is no relabelling) and
//! `scrape_series_added` (series not in the previous scrape) with the target's labels. A failed
//! scrape writes `up 0` and a staleness marker for every series of the previous scrape, as
//! does a series that simply disappears from one scrape to the next: detectors stop seeing it
//! at once rather than after the lookback.
//!
//! The body is parsed by [`crate::ingest::exposition::parse_text`], Faultline's own parser,
//! not the prometheus-parse crate the design names: prometheus-parse silently skips lines it
//! cannot read (and so loses samples without a word), where a failed parse must fail the
//! scrape and say why.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::ingest::{self, Limits};
use crate::metrics::Metrics;
use crate::model::is_label_name;
use crate::model::units::PromDuration;
use crate::model::{Labels, STALE_NAN_BITS, Sample, SeriesSamples};
use crate::store::Store;

/// One `[[scrape]]` job of the server config, validated when the config is read.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "ScrapeFields")]
pub struct ScrapeConfig {
    /// The `job` label of every series scraped.
    pub job: String,
    /// The addresses scraped, `host:port`; each is its target's `instance` label.
    pub targets: Vec<String>,
    /// How often each target is scraped.
    pub interval: Duration,
    /// How long one scrape may take before it counts as failed.
    pub timeout: Duration,
    /// The URL path scraped.
    pub metrics_path: String,
    /// Extra labels of every target; they may override `job` and `instance`.
    pub labels: BTreeMap<String, String>,
}

/// `[[scrape]]` as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrapeFields {
    /// The `job` label of every series scraped. Required.
    job: String,
    /// The addresses scraped, `host:port`. Required, at least one.
    targets: Vec<String>,
    /// How often each target is scraped. Default 1m, as in Prometheus.
    #[serde(default = "default_interval")]
    interval: PromDuration,
    /// How long one scrape may take. Default 10s, or `interval` if that is shorter.
    timeout: Option<PromDuration>,
    /// The URL path scraped. Default `/metrics`.
    #[serde(default = "default_metrics_path")]
    metrics_path: String,
    /// `http` (the default). `https` is refused: this build has no TLS client.
    #[serde(default = "default_scheme")]
    scheme: String,
    /// Extra target labels.
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn default_interval() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

fn default_scheme() -> String {
    "http".to_string()
}

impl TryFrom<ScrapeFields> for ScrapeConfig {
    type Error = String;

    fn try_from(f: ScrapeFields) -> Result<Self, String> {
        let job = &f.job;
        let err = |field: &str, msg: String| Err(format!("scrape job {job:?}: `{field}`: {msg}"));
        if job.is_empty() {
            return Err("scrape: `job` must not be empty".to_string());
        }
        if f.targets.is_empty() {
            return err("targets", "give at least one `host:port`".into());
        }
        for t in &f.targets {
            if t.is_empty() || t.contains(['/', ' ', '?', '#']) {
                return err(
                    "targets",
                    format!(
                        "{t:?} is not a `host:port` (scheme and path go in `scheme` and `metrics_path`)"
                    ),
                );
            }
        }
        let interval = f.interval.0;
        if interval.is_zero() {
            return err("interval", "must be longer than zero".into());
        }
        let timeout = f
            .timeout
            .map_or(interval.min(Duration::from_secs(10)), |t| t.0);
        if timeout.is_zero() || timeout > interval {
            return err(
                "timeout",
                format!(
                    "{} must be longer than zero and at most the interval ({})",
                    PromDuration(timeout),
                    PromDuration(interval)
                ),
            );
        }
        if !f.metrics_path.starts_with('/') {
            return err(
                "metrics_path",
                format!("{:?} must start with `/`", f.metrics_path),
            );
        }
        match f.scheme.as_str() {
            "http" => {}
            "https" => {
                return err(
                    "scheme",
                    "https is not supported: this build has no TLS client; scrape over http".into(),
                );
            }
            other => return err("scheme", format!("{other:?} is not `http`")),
        }
        for name in f.labels.keys() {
            if !is_label_name(name) || name.starts_with("__") {
                return err(
                    "labels",
                    format!(
                        "{name:?} is not a label name (`[a-zA-Z_][a-zA-Z0-9_]*`, no leading `__`)"
                    ),
                );
            }
        }
        Ok(ScrapeConfig {
            job: f.job,
            targets: f.targets,
            interval,
            timeout,
            metrics_path: f.metrics_path,
            labels: f.labels,
        })
    }
}

/// Starts one scrape loop per target of every job; what they scrape goes into `store`.
pub fn start(
    jobs: &[ScrapeConfig],
    max_body_bytes: usize,
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
) {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .user_agent(concat!("Faultline/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("scraping is off: cannot build an HTTP client: {e}");
            return;
        }
    };
    let limits = Limits {
        max_body_bytes,
        ..Limits::default()
    };
    for job in jobs {
        for address in &job.targets {
            let mut target = Target::new(job, address, client.clone(), limits.clone());
            let (store, metrics) = (store.clone(), metrics.clone());
            tracing::info!(job = %job.job, target = %target.url, "scraping every {}", PromDuration(job.interval));
            tokio::spawn(async move {
                // Targets are spread over the interval, as Prometheus spreads them, by a
                // stable offset from their labels.
                let interval_ms = (target.interval.as_millis() as u64).max(1);
                let offset = Duration::from_millis(target.labels.fingerprint() % interval_ms);
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, target.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let batch = target.scrape(crate::model::time::now_ms()).await;
                    let n: usize = batch
                        .iter()
                        .flat_map(|s| &s.samples)
                        .filter(|s| !s.is_stale_marker())
                        .count();
                    store.append(batch);
                    metrics.add(
                        "faultline_samples_ingested_total",
                        &[("source", "scrape")],
                        n as f64,
                    );
                }
            });
        }
    }
}

/// One target and what its last scrape returned.
pub struct Target {
    url: String,
    /// `job`, `instance` and the job's extra labels.
    labels: Labels,
    interval: Duration,
    timeout: Duration,
    client: reqwest::Client,
    limits: Limits,
    /// The series of the previous scrape, which get staleness markers if they go missing.
    previous: HashSet<Labels>,
    /// Whether the previous scrape succeeded (None before the first), to log changes only.
    was_up: Option<bool>,
}

impl Target {
    /// A target of `job` at `address`.
    pub fn new(
        job: &ScrapeConfig,
        address: &str,
        client: reqwest::Client,
        limits: Limits,
    ) -> Target {
        let mut labels = Labels::from_pairs([("job", job.job.as_str()), ("instance", address)]);
        for (k, v) in &job.labels {
            labels.set(k, v);
        }
        Target {
            url: format!("http://{address}{}", job.metrics_path),
            labels,
            interval: job.interval,
            timeout: job.timeout,
            client,
            limits,
            previous: HashSet::new(),
            was_up: None,
        }
    }

    /// Scrapes once at `now` (ms): what to append to the store, that is the scraped series
    /// with the target's labels, staleness markers for series gone since the previous
    /// scrape, and the scrape's own series (`up`, `scrape_duration_seconds`...).
    pub async fn scrape(&mut self, now: i64) -> Vec<SeriesSamples> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.fetch()).await {
            Ok(r) => r.and_then(|body| {
                ingest::exposition::parse_text(&body, now, &[], &self.limits)
                    .map_err(|e| e.to_string())
            }),
            Err(_) => Err(format!("timed out after {}", PromDuration(self.timeout))),
        };
        let duration = started.elapsed().as_secs_f64();
        let (mut batch, up) = match result {
            Ok(series) => {
                if self.was_up == Some(false) {
                    tracing::info!(target = %self.url, "scrape target is up again");
                }
                let batch: Vec<SeriesSamples> = series
                    .into_iter()
                    .map(|s| SeriesSamples {
                        labels: attach(&self.labels, s.labels),
                        samples: s.samples,
                    })
                    .collect();
                (batch, true)
            }
            Err(e) => {
                if self.was_up != Some(false) {
                    tracing::warn!(target = %self.url, "scrape failed: {e}");
                } else {
                    tracing::debug!(target = %self.url, "scrape failed: {e}");
                }
                (Vec::new(), false)
            }
        };
        self.was_up = Some(up);
        let scraped = batch.len();
        // Interned, the labels kept for the next scrape are the store's own copy.
        let current: HashSet<Labels> = batch
            .iter_mut()
            .map(|s| {
                s.labels = s.labels.interned();
                s.labels.clone()
            })
            .collect();
        let stale = Sample {
            ts: now,
            value: f64::from_bits(STALE_NAN_BITS),
        };
        let added = current.difference(&self.previous).count();
        for gone in self.previous.difference(&current) {
            batch.push(SeriesSamples {
                labels: gone.clone(),
                samples: vec![stale],
            });
        }
        self.previous = current;
        for (name, value) in [
            ("up", if up { 1.0 } else { 0.0 }),
            ("scrape_duration_seconds", duration),
            ("scrape_samples_scraped", scraped as f64),
            ("scrape_samples_post_metric_relabeling", scraped as f64),
            ("scrape_series_added", added as f64),
        ] {
            let mut labels = self.labels.clone();
            labels.set("__name__", name);
            batch.push(SeriesSamples {
                labels,
                samples: vec![Sample { ts: now, value }],
            });
        }
        batch
    }

    /// GETs the target: the body of a 200 response, within the body limit.
    async fn fetch(&self) -> Result<Vec<u8>, String> {
        let mut resp = self
            .client
            .get(&self.url)
            .header(
                reqwest::header::ACCEPT,
                "text/plain;version=0.0.4;q=1,*/*;q=0.1",
            )
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                self.timeout.as_secs_f64().to_string(),
            )
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("server returned HTTP status {}", resp.status()));
        }
        let encoding = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
            body.extend_from_slice(&chunk);
            if body.len() > self.limits.max_body_bytes {
                return Err(format!(
                    "body exceeds the limit of {} bytes",
                    self.limits.max_body_bytes
                ));
            }
        }
        ingest::decode_content_encoding(encoding.as_deref(), &body, &self.limits)
            .map(|b| b.into_owned())
            .map_err(|e| e.to_string())
    }
}

/// The scraped labels with the target's labels set over them; a scraped value they
/// replace moves to `exported_<name>` (`exported_exported_<name>` if that is taken, and so
/// on), as Prometheus does with `honor_labels: false`.
fn attach(target: &Labels, mut scraped: Labels) -> Labels {
    let conflicts: Vec<(String, String)> = target
        .iter()
        .filter_map(|(name, _)| Some((name.to_string(), scraped.get(name)?.to_string())))
        .collect();
    for (name, value) in target.iter() {
        scraped.set(name, value);
    }
    for (name, value) in conflicts {
        let mut exported = format!("exported_{name}");
        while scraped.get(&exported).is_some() {
            exported.insert_str(0, "exported_");
        }
        scraped.set(&exported, &value);
    }
    scraped
}

/// An error with its causes, which is where reqwest says what actually went wrong
/// ("connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreLimits};

    /// The first scrape job of a server config file.
    fn job(toml_text: &str) -> Result<ScrapeConfig, String> {
        toml::from_str::<crate::config::Config>(toml_text)
            .map(|mut c| c.scrape.remove(0))
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn config_defaults_and_validation() {
        let j = job("[[scrape]]\njob = \"node\"\ntargets = [\"h:9100\"]").unwrap();
        assert_eq!(j.interval, Duration::from_secs(60));
        assert_eq!(j.timeout, Duration::from_secs(10));
        assert_eq!(j.metrics_path, "/metrics");
        let j = job("[[scrape]]\njob = \"n\"\ntargets = [\"h:1\"]\ninterval = \"2s\"").unwrap();
        assert_eq!(
            j.timeout,
            Duration::from_secs(2),
            "timeout defaults to at most the interval"
        );

        let refused = |extra: &str| job(&format!("[[scrape]]\njob = \"n\"\n{extra}")).unwrap_err();
        assert_eq!(
            refused("targets = []"),
            "scrape job \"n\": `targets`: give at least one `host:port`"
        );
        assert!(refused("targets = [\"http://h:1/metrics\"]").contains("is not a `host:port`"));
        assert_eq!(
            refused("targets = [\"h:1\"]\ninterval = \"5s\"\ntimeout = \"6s\""),
            "scrape job \"n\": `timeout`: 6s must be longer than zero and at most the interval (5s)"
        );
        assert!(refused("targets = [\"h:1\"]\nscheme = \"https\"").contains("no TLS client"));
        assert!(
            refused("targets = [\"h:1\"]\nmetrics_path = \"metrics\"").contains("start with `/`")
        );
        assert!(
            refused("targets = [\"h:1\"]\nlabels = { __x = \"1\" }").contains("not a label name")
        );
        assert!(
            refused("targets = [\"h:1\"]\nintervl = \"1s\"").contains("unknown field `intervl`")
        );
    }

    #[test]
    fn target_labels_win_and_scraped_ones_are_exported() {
        let target = Labels::from_pairs([("job", "node"), ("instance", "h:1")]);
        let scraped = Labels::from_pairs([
            ("__name__", "m"),
            ("job", "batch"),
            ("exported_job", "x"),
            ("instance", "h:1"),
            ("path", "/"),
        ]);
        assert_eq!(
            attach(&target, scraped).to_string(),
            r#"{__name__="m", exported_exported_job="batch", exported_instance="h:1", exported_job="x", instance="h:1", job="node", path="/"}"#
        );
    }

    /// Serves the text in `body` on `/metrics` until the returned sender is dropped.
    async fn serve(
        body: Arc<std::sync::Mutex<&'static str>>,
        listener: tokio::net::TcpListener,
    ) -> tokio::sync::oneshot::Sender<()> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move { *body.lock().unwrap() }),
        );
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    rx.await.ok();
                })
                .await
                .ok();
        });
        tx
    }

    fn text(body: &'static str) -> Arc<std::sync::Mutex<&'static str>> {
        Arc::new(std::sync::Mutex::new(body))
    }

    #[tokio::test]
    async fn a_failed_scrape_writes_up_0_and_ends_the_previous_series() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let stop = serve(
            text("# TYPE temp gauge\ntemp{room=\"a\"} 21.5\ntemp{room=\"b\"} 19\n"),
            listener,
        )
        .await;
        let config = job(&format!(
            "[[scrape]]\njob = \"sensors\"\ntargets = [\"{address}\"]\ninterval = \"1s\"\nlabels = {{ site = \"x\" }}"
        ))
        .unwrap();
        let mut target = Target::new(&config, &address, reqwest::Client::new(), Limits::default());
        let store = Store::new(StoreLimits::default());

        store.append(target.scrape(1_000).await);
        let i = format!("instance=\"{address}\", job=\"sensors\"");
        assert_eq!(
            store.instant("temp", 1_500),
            [
                (
                    format!("{{__name__=\"temp\", {i}, room=\"a\", site=\"x\"}}"),
                    21.5
                ),
                (
                    format!("{{__name__=\"temp\", {i}, room=\"b\", site=\"x\"}}"),
                    19.0
                ),
            ]
        );
        let i = format!("{i}, site=\"x\"");
        assert_eq!(
            store.instant("up", 1_500),
            [(format!("{{__name__=\"up\", {i}}}"), 1.0)]
        );
        assert_eq!(store.instant("scrape_samples_scraped", 1_500)[0].1, 2.0);
        assert_eq!(
            store.instant("scrape_samples_post_metric_relabeling", 1_500)[0].1,
            2.0
        );
        assert_eq!(store.instant("scrape_series_added", 1_500)[0].1, 2.0);
        assert_eq!(store.instant("scrape_duration_seconds", 1_500).len(), 1);

        drop(stop);
        // Wait for the listener to close, so that the next scrape is refused.
        while tokio::net::TcpStream::connect(&address).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        store.append(target.scrape(2_000).await);
        assert_eq!(
            store.instant("up", 2_500),
            [(format!("{{__name__=\"up\", {i}}}"), 0.0)]
        );
        assert_eq!(store.instant("scrape_samples_scraped", 2_500)[0].1, 0.0);
        assert_eq!(store.instant("scrape_series_added", 2_500)[0].1, 0.0);
        assert_eq!(
            store.instant("temp", 2_500),
            [],
            "the staleness markers end the series at once, well within the lookback"
        );
    }

    #[tokio::test]
    async fn a_series_missing_from_the_next_scrape_ends() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let config = job(&format!(
            "[[scrape]]\njob = \"j\"\ntargets = [\"{address}\"]"
        ))
        .unwrap();
        let mut target = Target::new(&config, &address, reqwest::Client::new(), Limits::default());
        let body = text("a 1\nb 2\n");
        let _stop = serve(body.clone(), listener).await;
        let store = Store::new(StoreLimits::default());
        store.append(target.scrape(1_000).await);
        *body.lock().unwrap() = "a 3\n";
        store.append(target.scrape(2_000).await);
        assert_eq!(store.instant("a", 2_500).len(), 1);
        assert_eq!(store.instant("b", 2_500), []);
        assert_eq!(store.instant("up", 2_500)[0].1, 1.0);
        assert_eq!(store.instant("scrape_series_added", 2_500)[0].1, 0.0);
        *body.lock().unwrap() = "a 4\nc 5\n";
        store.append(target.scrape(3_000).await);
        assert_eq!(store.instant("scrape_series_added", 3_500)[0].1, 1.0);
    }

    #[tokio::test]
    async fn a_bad_body_fails_the_scrape() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let _stop = serve(text("ok 1\nnot a sample line\n"), listener).await;
        let config = job(&format!(
            "[[scrape]]\njob = \"j\"\ntargets = [\"{address}\"]"
        ))
        .unwrap();
        let mut target = Target::new(&config, &address, reqwest::Client::new(), Limits::default());
        let store = Store::new(StoreLimits::default());
        store.append(target.scrape(1_000).await);
        assert_eq!(store.instant("up", 1_500)[0].1, 0.0);
        assert_eq!(store.instant("ok", 1_500), []);
    }
}
