//! The health port: `/livez`, `/readyz`, `/metrics` on 127.0.0.1 by default.
//!
//! `/readyz` is served from a snapshot that a background task rebuilds every second and at every
//! part state change, so a probe never waits on the database or a lock: it clones an `Arc`.
//! The body is `application/health+json` (draft-inadarei-api-health-check).

mod metrics;
mod readyz;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::supervisor::Registry;

pub use metrics::{Histogram, counter};
pub use readyz::Status;

/// How long a database ping may take before readiness fails.
const DB_PING_TIMEOUT: Duration = Duration::from_secs(2);
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// A check contributed by another part (the guards: breaker states, FLOOD_WAIT pacing).
#[derive(Debug, Clone)]
pub struct ExtraCheck {
    pub component_type: &'static str,
    pub status: Status,
    pub observed_value: Option<f64>,
    pub observed_unit: Option<&'static str>,
    pub output: String,
}

struct DbStats {
    last: Result<Duration, String>,
    last_ok_at: Option<Instant>,
    latency: Histogram,
}

pub struct Health {
    registry: Registry,
    store: Store,
    started: Instant,
    shutting_down: AtomicBool,
    snapshot: RwLock<Arc<readyz::Snapshot>>,
    db: Mutex<DbStats>,
    extra: Mutex<BTreeMap<String, ExtraCheck>>,
    /// Other parts' metrics (the guard's counters, the parser's lag), appended to `/metrics`.
    metric_sources: Mutex<Vec<MetricSource>>,
}

/// Writes Prometheus text for `/metrics`.
pub type MetricSource = Arc<dyn Fn(&mut String) + Send + Sync>;

impl Health {
    pub fn new(registry: Registry, store: Store) -> Arc<Health> {
        let h = Arc::new(Health {
            registry,
            store,
            started: Instant::now(),
            shutting_down: AtomicBool::new(false),
            snapshot: RwLock::new(Arc::new(readyz::Snapshot::starting())),
            db: Mutex::new(DbStats {
                last: Err("not checked yet".into()),
                last_ok_at: None,
                latency: Histogram::new(metrics::DB_BUCKETS),
            }),
            extra: Mutex::new(BTreeMap::new()),
            metric_sources: Mutex::new(Vec::new()),
        });
        h.rebuild();
        h
    }

    /// Sets (or with `None` clears) a check that another part reports, e.g.
    /// `breaker:mtproto-dc2` or `floodWait:messages.getHistory`.
    pub fn set_check(&self, name: &str, check: Option<ExtraCheck>) {
        {
            let mut extra = self.extra.lock().unwrap_or_else(|p| p.into_inner());
            match check {
                Some(c) => extra.insert(name.to_string(), c),
                None => extra.remove(name),
            };
        }
        self.rebuild();
    }

    /// Adds metrics another part keeps to `/metrics`.
    pub fn add_metrics(&self, source: MetricSource) {
        self.metric_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// From now on `/readyz` answers 503: the daemon is draining.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.rebuild();
    }

    pub fn current(&self) -> Arc<readyz::Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Pings the database, records the latency and rebuilds the snapshot. While writes fail
    /// (`store::writes`), tries one, and answers `Err` with the cause until one commits: the
    /// watchdog withholds its ping, and readiness fails with `sqlite:writes`.
    pub async fn refresh(&self) -> Result<Duration, String> {
        let res = match tokio::time::timeout(DB_PING_TIMEOUT, self.store.ping()).await {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", DB_PING_TIMEOUT.as_secs())),
        };
        if crate::store::writes::failing().is_some() {
            // Bounded: another program's lock makes the write wait the busy timeout.
            let _ = tokio::time::timeout(DB_PING_TIMEOUT, self.store.probe_write()).await;
        }
        let writes = crate::store::writes::failing().map(|(cause, since)| {
            format!(
                "database writes have failed for {} s: {}",
                since.elapsed().as_secs(),
                cause.explain()
            )
        });
        self.set_check(
            "sqlite:writes",
            writes.as_ref().map(|why| ExtraCheck {
                component_type: "datastore",
                status: Status::Fail,
                observed_value: None,
                observed_unit: None,
                output: why.clone(),
            }),
        );
        {
            let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(d) = res {
                db.latency.observe(d.as_secs_f64());
                db.last_ok_at = Some(Instant::now());
            }
            db.last = res.clone();
        }
        self.rebuild();
        match writes {
            Some(why) => Err(why),
            None => res,
        }
    }

    fn rebuild(&self) {
        let db_last = {
            let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            db.last.clone()
        };
        let extra = self.extra.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let snap = readyz::build(
            self.shutting_down.load(Ordering::SeqCst),
            &db_last,
            &self.registry.snapshot(),
            &extra,
            self.started.elapsed(),
        );
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
    }

    /// Keeps the snapshot fresh until `cancel`.
    pub async fn run_refresher(self: Arc<Self>, cancel: CancellationToken) {
        let mut changes = self.registry.subscribe();
        loop {
            changes.mark_unchanged();
            let _ = self.refresh().await;
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
                r = changes.changed() => if r.is_err() { return },
                _ = cancel.cancelled() => return,
            }
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn metrics_text(&self) -> String {
        let mut text = {
            let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            metrics::render(&metrics::Inputs {
                uptime: self.started.elapsed(),
                ready: self.current().status != Status::Fail,
                parts: self.registry.snapshot(),
                db_latency: &db.latency,
                db_up: db.last.is_ok(),
            })
        };
        let sources = self
            .metric_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for source in sources {
            source(&mut text);
        }
        text
    }

    pub fn router(self: &Arc<Self>) -> Router {
        let ready = self.clone();
        let metrics = self.clone();
        Router::new()
            .route("/livez", get(|| async { (StatusCode::OK, "ok\n") }))
            .route(
                "/readyz",
                get(move || {
                    let snap = ready.current();
                    async move { snap.response() }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let text = metrics.metrics_text();
                    async move {
                        Response::builder()
                            .status(StatusCode::OK)
                            .header(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )
                            .header(header::CACHE_CONTROL, "no-store")
                            .body(Body::from(text))
                            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
                    }
                }),
            )
    }
}

/// Binds the health port. Done before READY, so a port already taken is reported at start.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves until `cancel`. The listener is a clone, so a restarted part serves the same socket.
pub async fn serve(
    health: Arc<Health>,
    listener: &std::net::TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let l = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
    axum::serve(l, health.router())
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::PartState;

    /// Regression: a change made while the refresher was busy pinging the database used to be
    /// lost (`Notify::notify_waiters` wakes only current waiters), leaving /readyz a second stale.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readyz_reflects_a_part_change_without_waiting_for_the_next_tick() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::config::StoreConfig {
            dir: dir.path().to_path_buf(),
            busy_timeout: Duration::from_secs(5),
            read_connections: 1,
        })
        .await
        .unwrap();
        let reg = Registry::default();
        let health = Health::new(reg.clone(), store.clone());
        let cancel = CancellationToken::new();
        tokio::spawn(health.clone().run_refresher(cancel.clone()));
        for i in 0..50 {
            let name = format!("part{i}");
            reg.set(&name, PartState::Running);
            let t = Instant::now();
            loop {
                let body = health.current().body.clone();
                if std::str::from_utf8(&body)
                    .unwrap()
                    .contains(&format!("part:{name}"))
                {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_millis(500),
                    "change {i} not seen"
                );
                tokio::task::yield_now().await;
            }
        }
        cancel.cancel();
        store.close().await;
    }
}
