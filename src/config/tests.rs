//! Tests of `config`: loading, overrides and validation.

use super::*;

fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Config::from_toml(text, Some(Path::new("/etc/t/config.toml")), &env, None)
}

#[test]
fn defaults_are_loopback_and_relative_to_the_config_file() {
    let c = parse("", &[]).unwrap();
    assert_eq!(c.health.listen.to_string(), "127.0.0.1:8787");
    assert_eq!(c.store.dir, PathBuf::from("/etc/t/sessions"));
    assert_eq!(c.vault.key_file, PathBuf::from("/etc/t/sessions/vault.key"));
    assert!(c.telegram.is_none() && c.bot.is_none());
}

#[test]
fn unknown_key_names_the_key_and_the_file() {
    let e = parse("[health]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n", &[]).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("/etc/t/config.toml"), "{s}");
    assert!(s.contains("listne"), "{s}");
    assert!(s.contains("line 3"), "{s}");
}

#[test]
fn env_override_replaces_the_file_value_and_is_named_in_errors() {
    let c = parse(
        "[health]\nlisten = \"127.0.0.1:1\"\n",
        &[("TGPARSER_HEALTH__LISTEN", "127.0.0.1:2")],
    )
    .unwrap();
    assert_eq!(c.health.listen.port(), 2);
    let e = parse("", &[("TGPARSER_HEALTH__ALLOW_REMOTE", "maybe")]).unwrap_err();
    assert_eq!(e.source_name, "TGPARSER_HEALTH__ALLOW_REMOTE");
    let e = parse("", &[("TGPARSER_HEALTH__LISTEN", "0.0.0.0:1")]).unwrap_err();
    assert_eq!(e.source_name, "TGPARSER_HEALTH__LISTEN");
    let e = parse("", &[("TGPARSER_HEALTH__NOPE", "1")]).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn non_loopback_health_is_refused_unless_allowed() {
    let e = parse("[health]\nlisten = \"0.0.0.0:8787\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("allow_remote"), "{e}");
    let c = parse(
        "[health]\nlisten = \"0.0.0.0:8787\"\nallow_remote = true\n",
        &[],
    )
    .unwrap();
    assert!(c.health.allow_remote);
}

#[test]
fn secret_paths_resolve_against_the_credentials_directory() {
    let c = Config::from_toml(
        "[vault]\nkey_file = \"vault.key\"\n[store]\ndir = \"state\"\n",
        Some(Path::new("/etc/t/config.toml")),
        &[],
        Some(Path::new("/run/credentials/tgparser.service")),
    )
    .unwrap();
    assert_eq!(
        c.vault.key_file,
        PathBuf::from("/run/credentials/tgparser.service/vault.key")
    );
    assert_eq!(c.store.dir, PathBuf::from("/etc/t/state"));
}

#[test]
fn no_config_file_anywhere_says_to_pass_config() {
    let e = Config::locate_in(None, &["/nonexistent/a.toml", "/nonexistent/b.toml"]).unwrap_err();
    assert!(
        e.to_string()
            .contains("/nonexistent/a.toml and /nonexistent/b.toml"),
        "{e}"
    );
    assert!(e.to_string().contains("--config"), "{e}");
    let p = Config::locate_in(Some(Path::new("x.toml")), &[]).unwrap();
    assert_eq!(p, PathBuf::from("x.toml"));
}

#[test]
fn half_a_telegram_credential_is_an_error_and_none_is_not() {
    assert!(parse("[telegram]\n", &[]).unwrap().telegram.is_none());
    let e = parse("[telegram]\napi_id = 5\n", &[]).unwrap_err();
    assert!(e.to_string().contains("telegram.api_hash_file"), "{e}");
}
