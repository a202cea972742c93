//! Every bad configuration gets a message naming the file, the key, what was found and what was
//! expected, and exit code 78 so systemd stops restarting.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

fn expect_78(env: &Env, args: &[&str], needles: &[&str]) -> String {
    let out = env.run(args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(78), "{all}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{all}");
    }
    err
}

#[test]
fn unknown_key_names_file_key_and_line() {
    let env = Env::new();
    env.write_config("[bot]\ntoken_fiel = \"x\"\n");
    env.keygen();
    let cfg = env.path("config.toml").display().to_string();
    expect_78(
        &env,
        &["run"],
        &[&cfg, "token_fiel", "unknown field", "token_file"],
    );
    expect_78(&env, &["check-config"], &["token_fiel"]);
}

#[test]
fn wrong_type_names_key_found_and_expected() {
    let env = Env::new();
    env.write_config("");
    std::fs::write(
        env.path("config.toml"),
        "[health]\nallow_remote = \"yes\"\n",
    )
    .unwrap();
    expect_78(
        &env,
        &["run"],
        &["allow_remote", "invalid type", "string", "bool"],
    );
}

#[test]
fn missing_secret_file_names_key_and_path() {
    let env = Env::new();
    env.write_config("[bot]\ntoken_file = \"no_such_token\"\n");
    env.keygen();
    expect_78(
        &env,
        &["run"],
        &["bot.token_file", "no_such_token", "cannot be read"],
    );
}

#[test]
fn missing_vault_key_says_how_to_make_one() {
    let env = Env::new();
    env.write_config("");
    expect_78(
        &env,
        &["run"],
        &["vault.key", "does not exist", "tgparser keygen"],
    );
}

#[test]
fn vault_key_of_the_wrong_length_is_refused() {
    let env = Env::new();
    env.write_config("");
    std::fs::write(env.path("vault.key"), "00112233445566778899\n").unwrap();
    std::fs::set_permissions(
        env.path("vault.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    expect_78(
        &env,
        &["run"],
        &["holds 10 bytes", "expected a 32-byte key"],
    );
    expect_78(&env, &["check-config"], &["expected a 32-byte key"]);
    assert!(
        !env.state_dir().join("tgparser.db").exists(),
        "nothing is created when the key is bad"
    );
}

#[test]
fn non_loopback_health_bind_is_refused() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let text = std::fs::read_to_string(env.path("config.toml"))
        .unwrap()
        .replace("listen = \"127.0.0.1:", "listen = \"0.0.0.0:");
    std::fs::write(env.path("config.toml"), text).unwrap();
    expect_78(
        &env,
        &["run"],
        &[
            "health.listen",
            "0.0.0.0",
            "not a loopback address",
            "allow_remote",
        ],
    );
}

#[test]
fn bad_environment_override_names_the_variable() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let out = env
        .cmd(&["check-config"])
        .env("TGPARSER_HEALTH__LISTEN", "somewhere:99")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TGPARSER_HEALTH__LISTEN"), "{err}");
    assert!(err.contains("somewhere:99"), "{err}");
}

#[test]
fn world_readable_key_file_warns_but_works() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    std::fs::set_permissions(
        env.path("vault.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = env.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("readable by other users"),
        "{err}"
    );
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn group_readable_secret_file_warns_at_run() {
    let env = Env::new();
    std::fs::write(env.path("bot_token"), "1:abc").unwrap();
    std::fs::set_permissions(
        env.path("bot_token"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    env.write_config("[bot]\ntoken_file = \"bot_token\"\n");
    env.keygen();
    let out = env.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bot.token_file: secret file"));
}

#[test]
fn secret_paths_resolve_against_credentials_directory() {
    let env = Env::new();
    let creds = env.path("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("bot_token"), "1:abc").unwrap();
    std::fs::set_permissions(
        creds.join("bot_token"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    env.write_config("[bot]\ntoken_file = \"bot_token\"\n");
    let out = env
        .cmd(&["keygen", "--out"])
        .arg(creds.join("vault.key"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = env
        .cmd(&["check-config"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&creds.join("vault.key").display().to_string())
    );
}
