//! A part that panics is restarted with backoff, and `/readyz` keeps answering meanwhile.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tgparser::config::StoreConfig;
use tgparser::health::{self, Health};
use tgparser::store::Store;
use tgparser::supervisor::{Backoff, PartState, Registry, Supervisor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_part_is_restarted_and_readyz_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig {
        dir: dir.path().join("state"),
        busy_timeout: Duration::from_secs(5),
        read_connections: 2,
    })
    .await
    .unwrap();
    let registry = Registry::default();
    let health = Health::new(registry.clone(), store.clone());
    let listener = Arc::new(health::bind("127.0.0.1:0".parse().unwrap()).unwrap());
    let addr = listener.local_addr().unwrap();
    let backoff = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_millis(400),
        reset_after: Duration::from_secs(60),
    };
    let infra = Supervisor::new(registry.clone(), backoff);
    let parts = Supervisor::new(registry.clone(), backoff);
    {
        let (h, l) = (health.clone(), listener.clone());
        infra.spawn("health", move |ctx| {
            let (h, l) = (h.clone(), l.clone());
            async move {
                health::serve(h, &l, ctx.cancel)
                    .await
                    .map_err(|e| tgparser::supervisor::PartError::Retry(e.to_string()))
            }
        });
    }
    let starts = Arc::new(AtomicU32::new(0));
    {
        let starts = starts.clone();
        parts.spawn("parser", move |ctx| {
            let n = starts.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    panic!("malformed update #{n}");
                }
                ctx.cancel.cancelled().await;
                Ok(())
            }
        });
    }
    let refresher = tokio_util::sync::CancellationToken::new();
    tokio::spawn(health.clone().run_refresher(refresher.clone()));

    // Probe /readyz continuously while the part panics and restarts.
    let t = Instant::now();
    let mut answers = 0;
    let mut saw_backoff = false;
    let mut recovered = false;
    while t.elapsed() < Duration::from_secs(10) {
        let (code, body) = tokio::task::spawn_blocking(move || {
            tgparser::cli::http_get(addr, "/readyz", Duration::from_secs(2))
        })
        .await
        .unwrap()
        .expect("/readyz answers while a part is failing");
        answers += 1;
        assert!(code == 200 || code == 503, "{code}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let state = doc["checks"]["part:parser"][0]["observedValue"].clone();
        if state == "backoff" {
            saw_backoff = true;
            assert_eq!(doc["status"], "warn", "{doc}");
            assert!(doc["output"].as_str().unwrap().contains("malformed update"));
        }
        if state == "running" && doc["checks"]["part:parser"][0]["restarts"] == 3 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_backoff, "readyz showed the restart backoff");
    assert!(
        recovered,
        "part running again after 3 panics ({answers} probes)"
    );
    assert_eq!(starts.load(Ordering::SeqCst), 4);
    assert_eq!(registry.get("parser").unwrap().state, PartState::Running);

    health.begin_shutdown();
    let (code, _) = tokio::task::spawn_blocking(move || {
        tgparser::cli::http_get(addr, "/readyz", Duration::from_secs(2)).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(code, 503, "readiness turns 503 as soon as shutdown begins");
    assert!(parts.shutdown(Duration::from_secs(2)).await);
    assert!(infra.shutdown(Duration::from_secs(2)).await);
    refresher.cancel();
    store.close().await;
}
