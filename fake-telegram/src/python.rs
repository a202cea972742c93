//! A Python with given PyPI packages, for the tests and benchmarks that run another client or
//! tool against the fake (Telethon, Datasette): `$<env_var>` when set, else a virtualenv made
//! once under `dir` (`python3 -m venv`, then `pip install`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python to use: `$env_var`, or `dir/name`'s virtualenv with `packages` installed (made on
/// the first call; a marker file says it is complete). Panics with the reason when Python or
/// PyPI cannot be reached: the caller is a test that needs it.
pub fn with_packages(env_var: &str, dir: &Path, name: &str, packages: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let venv = dir.join(name);
    let py = venv.join("bin/python");
    let ready = venv.join(".installed");
    if !ready.exists() {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed"); // ok: only tests and benches call this, and they need it
        assert!(st.success(), "python3 -m venv failed");
        let out = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(packages)
            .output()
            .expect("pip runs"); // ok: as above, a test that cannot run says why
        assert!(
            out.status.success(),
            "pip install {packages:?} failed (PyPI must be reachable):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // ok: as above; the venv directory was just made by this process
        std::fs::write(&ready, packages.join(" ")).expect("the venv's marker is written");
    }
    py
}
