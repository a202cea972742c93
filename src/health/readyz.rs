//! The `/readyz` document and the one-line summary systemd shows as STATUS=.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::ExtraCheck;
use crate::supervisor::{PartState, PartStatus};

/// Health-check status, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

pub struct Snapshot {
    pub status: Status,
    pub body: Bytes,
    /// One line for `STATUS=` and logs.
    pub summary: String,
}

impl Snapshot {
    pub fn starting() -> Snapshot {
        Snapshot {
            status: Status::Fail,
            body: Bytes::from_static(
                br#"{"status":"fail","serviceId":"tgparser","output":"starting"}"#,
            ),
            summary: "starting".into(),
        }
    }

    pub fn response(&self) -> Response {
        let code = if self.status == Status::Fail {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        Response::builder()
            .status(code)
            .header(header::CONTENT_TYPE, "application/health+json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::from(self.body.clone()))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

fn part_status(state: &PartState, shutting_down: bool) -> Status {
    match state {
        PartState::Running => Status::Pass,
        PartState::NotConfigured { .. } | PartState::Backoff { .. } => Status::Warn,
        PartState::Failed { .. } => Status::Fail,
        PartState::Stopped if shutting_down => Status::Warn,
        PartState::Stopped => Status::Fail,
    }
}

pub fn build(
    shutting_down: bool,
    db: &Result<Duration, String>,
    parts: &[(String, PartStatus)],
    extra: &BTreeMap<String, ExtraCheck>,
    uptime: Duration,
) -> Snapshot {
    let now = crate::time::rfc3339(SystemTime::now(), true);
    let mut checks = Map::new();
    let mut worst = Status::Pass;
    let mut notes: Vec<String> = Vec::new();

    let db_status = match db {
        Ok(_) => Status::Pass,
        Err(e) => {
            notes.push(format!("database: {e}"));
            Status::Fail
        }
    };
    worst = worst.max(db_status);
    let mut db_check = json!({
        "componentType": "datastore",
        "status": db_status.as_str(),
        "time": now,
    });
    match db {
        Ok(d) => {
            db_check["observedValue"] = json!((d.as_secs_f64() * 1e6).round() / 1e3);
            db_check["observedUnit"] = json!("ms");
        }
        Err(e) => db_check["output"] = json!(e),
    }
    checks.insert("sqlite:responseTime".into(), json!([db_check]));

    for (name, p) in parts {
        let s = part_status(&p.state, shutting_down);
        worst = worst.max(s);
        if s != Status::Pass {
            notes.push(format!("{name} {}", p.state.describe()));
        }
        checks.insert(
            format!("part:{name}"),
            json!([{
                "componentType": "component",
                "status": s.as_str(),
                "observedValue": p.state.name(),
                "output": p.state.describe(),
                "restarts": p.restarts,
                "time": now,
            }]),
        );
    }

    for (name, c) in extra {
        worst = worst.max(c.status);
        if c.status != Status::Pass {
            notes.push(format!("{name}: {}", c.output));
        }
        let mut v = json!({
            "componentType": c.component_type,
            "status": c.status.as_str(),
            "output": c.output,
            "time": now,
        });
        if let Some(x) = c.observed_value {
            v["observedValue"] = json!(x);
        }
        if let Some(u) = c.observed_unit {
            v["observedUnit"] = json!(u);
        }
        checks.insert(name.clone(), Value::Array(vec![v]));
    }

    if shutting_down {
        worst = Status::Fail;
        notes.insert(0, "shutting down".into());
    }
    let output = notes.join("; ");
    let mut doc = json!({
        "status": worst.as_str(),
        "version": "1",
        "releaseId": env!("CARGO_PKG_VERSION"),
        "serviceId": "tgparser",
        "description": "tgparser: Telegram channel parser and bot daemon",
        "uptimeSeconds": uptime.as_secs(),
        "checks": Value::Object(checks),
    });
    if !output.is_empty() {
        doc["output"] = json!(output);
    }
    let db_text = match db {
        Ok(d) => format!("db {:.1} ms", d.as_secs_f64() * 1e3),
        Err(_) => "db down".into(),
    };
    let summary = match worst {
        Status::Pass => format!("ready; {db_text}"),
        Status::Warn => format!("ready with warnings: {output}; {db_text}"),
        Status::Fail => format!("not ready: {output}; {db_text}"),
    };
    Snapshot {
        status: worst,
        body: Bytes::from(doc.to_string()),
        summary,
    }
}
