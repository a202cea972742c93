//! The shipped unit passes `systemd-analyze verify` and its sandbox rates at most 2.0.

mod common;

use std::process::Command;

fn unit_for_this_build(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/tgparser.service"
    ))
    .unwrap();
    assert!(unit.contains("/usr/local/bin/tgparser"));
    let unit = unit.replace("/usr/local/bin/tgparser", common::BIN);
    let path = dir.join("tgparser.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze is installed (.ci/run installs systemd)");
    assert!(out.status.success(), "{}", common::text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("tgparser.service:"),
        "verify printed warnings about the unit:\n{err}"
    );
}

#[test]
fn unit_sandbox_exposure_is_at_most_2() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze is installed (.ci/run installs systemd)");
    let all = common::text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line:\n{all}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line:?}"));
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{all}");
}

#[test]
fn unit_has_the_settings_the_product_promises() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/tgparser.service"
    ))
    .unwrap();
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "StartLimitIntervalSec=",
        "DynamicUser=yes",
        "StateDirectory=tgparser",
        "LoadCredentialEncrypted=vault.key:",
        "LoadCredentialEncrypted=bot_token:",
        "LoadCredentialEncrypted=api_hash:",
        "LimitCORE=0",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle}");
    }
    let unit_section = unit.split("[Service]").next().unwrap();
    assert!(
        unit_section.contains("StartLimitBurst="),
        "start limits belong in [Unit]"
    );
}
