//! The command line. `anyhow` lives here and in `main` only; every command returns the process
//! exit code it wants (78 for configuration errors, so systemd stops restarting).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::daemon::{self, RunOptions};
use crate::store::{StateLock, Store};
use crate::vault::{Vault, VaultKey};

pub(crate) mod channels;
pub(crate) mod check;
use channels::ChannelsCommand;
mod login;
mod media;
mod media_fetch;
mod ops;

/// EX_CONFIG from sysexits.h: the configuration is wrong; restarting will not help.
pub const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "tgparser",
    version,
    about = "Telegram channel parser and bot daemon: archives channels into SQLite, searches them, sends keyword alerts.",
    long_about = None,
)]
pub struct Cli {
    /// Configuration file [default: ./config.toml, then /etc/tgparser/config.toml]
    #[arg(long, global = true, env = "TGPARSER_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (what systemd starts).
    Run,
    /// Run the whole daemon offline on a temporary state directory, no credentials needed.
    Demo {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long = "for", value_name = "SECONDS")]
        run_for: Option<u64>,
        /// Keep the state (database, key) in DIR instead of a temporary directory.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Health port address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Validate the configuration and the files it names, then exit (0 ok, 78 not).
    CheckConfig,
    /// Write a new random 32-byte vault key (hex, mode 0600). Never overwrites.
    Keygen {
        /// Where to write it [default: vault.key_file from the configuration]
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Apply pending database migrations and print their status.
    Migrate,
    /// Re-seal every secret in the database under a new vault key, in one transaction.
    /// Stop the daemon first.
    RotateKey {
        /// Where to write the new key. By default it replaces vault.key_file, and the old key is
        /// kept beside it as `<key_file>.old`.
        #[arg(long, value_name = "PATH")]
        new_key_out: Option<PathBuf>,
    },
    /// Probe a running daemon's /readyz: exit 0 when ready, 1 when not.
    Health {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Log the parsing account in (phone, code, 2FA password). Answers are read from standard
    /// input, so it can be scripted. Stop the daemon first.
    Login {
        /// Phone number in international format (asked for when missing).
        #[arg(long, conflicts_with = "qr")]
        phone: Option<String>,
        /// Log in by scanning a QR code with Telegram on a phone where the account is logged
        /// in (Settings → Devices → Link Desktop Device): no code is typed.
        #[arg(long)]
        qr: bool,
    },
    /// Log the parsing account out.
    Logout {
        /// Also forget the local session, auth keys included (works without reaching Telegram).
        #[arg(long)]
        forget: bool,
    },
    /// Manage the channels the parser follows.
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Read the followed channels' history now, in the foreground, showing progress.
    /// Resumes where it stopped. Stop the daemon first.
    Backfill {
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Search the archive: words in any script, "a phrase", prefix*, AND, OR, NOT, (groups).
    /// Reads the database read-only; safe while the daemon runs.
    Search {
        query: String,
        /// Print the FTS5 query for `messages_fts MATCH` (sqlite3, Datasette's raw search mode)
        /// that this search runs, and search nothing.
        #[arg(long)]
        fts: bool,
        /// Only this channel (@name, t.me link or id).
        #[arg(long)]
        channel: Option<String>,
        /// Posts from this date on (YYYY-MM-DD, UTC; or an RFC 3339 time).
        #[arg(long)]
        since: Option<String>,
        /// Posts before this date.
        #[arg(long)]
        until: Option<String>,
        /// At most this many posts, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Export posts as JSON lines or CSV, streamed (constant memory). Read-only; safe while
    /// the daemon runs.
    Export {
        /// Only this channel (@name, t.me link or id).
        #[arg(long)]
        channel: Option<String>,
        /// Posts from this date on (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Posts before this date.
        #[arg(long)]
        until: Option<String>,
        /// Only posts matching this FTS5 query.
        #[arg(long)]
        query: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ops::Format,
        /// Add every earlier version of each post.
        #[arg(long)]
        with_history: bool,
        /// Add each post's stored file: `media_path` (absolute; empty until downloaded) and
        /// `media_state` (pending, done, skipped, failed; empty: no file archived).
        #[arg(long)]
        with_media_paths: bool,
        /// Write to FILE (complete or not at all) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// A consistent copy of the database, taken while the daemon runs, checked with
    /// integrity_check. Never overwrites.
    Backup { file: PathBuf },
    /// Whether the archive is sound: the database, the search index word for word, the index's
    /// structure (when the daemon is stopped), and gaps waiting to be fetched. Exit 1 when not.
    Check,
    /// Per-channel counts: posts, backfill, edits, deletions, first and last post.
    Stats {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The media archive: what each channel downloads, and how far it got.
    #[command(subcommand)]
    Media(media::MediaCommand),
    /// Print the version, schema version and SQLite version.
    Version,
}

/// Picks the exit code for an error: 78 for anything an operator fixes in configuration.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<ConfigError>().is_some() {
            return EXIT_CONFIG;
        }
        if let Some(v) = cause.downcast_ref::<crate::vault::VaultError>()
            && v.is_config()
        {
            return EXIT_CONFIG;
        }
        if let Some(s) = cause.downcast_ref::<crate::store::StoreError>()
            && s.is_config()
        {
            return EXIT_CONFIG;
        }
        if let Some(crate::parser::session::SessionError::SealedKey { .. }) =
            cause.downcast_ref::<crate::parser::session::SessionError>()
        {
            return EXIT_CONFIG;
        }
        if let Some(c) = cause.downcast_ref::<crate::parser::client::ConnectError>()
            && c.is_config()
        {
            return EXIT_CONFIG;
        }
    }
    1
}

fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let path = Config::locate(cli.config.as_deref())?;
    Config::load(&path)
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run => {
            let cfg = load_config(&cli)?;
            crate::logging::init(&cfg.log);
            daemon::run(cfg, RunOptions::default()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            run_for,
            state_dir,
            listen,
        } => {
            crate::demo::run(run_for.map(Duration::from_secs), state_dir.clone(), *listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => {
            let cfg = load_config(&cli)?;
            check_config(&cfg)
        }
        Command::Keygen { out } => {
            let path = match out {
                Some(p) => p.clone(),
                None => load_config(&cli)?.vault.key_file,
            };
            let key = VaultKey::generate();
            key.write_new_file(&path)?;
            println!(
                "wrote a new vault key to {} (key id {}, mode 0600)",
                path.display(),
                key.id_hex()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let cfg = load_config(&cli)?;
            let store = Store::open(&cfg.store).await?;
            println!("database: {}", store.path().display());
            for m in store.migration_status().await? {
                let state = m.applied_at.as_deref().unwrap_or("pending");
                println!("  {:>4}  {:<24} applied {state}", m.version, m.description);
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::RotateKey { new_key_out } => {
            let cfg = load_config(&cli)?;
            rotate_key(&cfg, new_key_out.as_deref()).await
        }
        Command::Health { timeout } => {
            let cfg = load_config(&cli)?;
            Ok(probe_health(
                cfg.health.listen,
                Duration::from_secs(*timeout),
            ))
        }
        Command::Login { phone, qr } => {
            let cfg = load_config(&cli)?;
            if *qr {
                login::login_qr(&cfg).await
            } else {
                login::login(&cfg, phone.clone()).await
            }
        }
        Command::Logout { forget } => {
            let cfg = load_config(&cli)?;
            login::logout(&cfg, *forget).await
        }
        Command::Channels(c) => channels::run(&load_config(&cli)?, c).await,
        Command::Backfill { channel } => {
            let cfg = load_config(&cli)?;
            channels::run_backfill(&cfg, channel.as_deref()).await
        }
        Command::Search {
            query,
            fts,
            channel,
            since,
            until,
            limit,
            json,
        } => {
            if *fts {
                return ops::print_fts(query);
            }
            let cfg = load_config(&cli)?;
            ops::search(
                &cfg,
                ops::SearchArgs {
                    query,
                    channel: channel.as_deref(),
                    since: since.as_deref(),
                    until: until.as_deref(),
                    limit: *limit,
                    json: *json,
                },
            )
            .await
        }
        Command::Export {
            channel,
            since,
            until,
            query,
            format,
            with_history,
            with_media_paths,
            out,
        } => {
            let cfg = load_config(&cli)?;
            ops::export(
                &cfg,
                ops::ExportArgs {
                    channel: channel.as_deref(),
                    since: since.as_deref(),
                    until: until.as_deref(),
                    query: query.as_deref(),
                    format: *format,
                    with_history: *with_history,
                    with_media_paths: *with_media_paths,
                    out: out.as_deref(),
                },
            )
            .await
        }
        Command::Backup { file } => {
            let cfg = load_config(&cli)?;
            ops::backup(&cfg, file).await
        }
        Command::Check => check::check(&load_config(&cli)?).await,
        Command::Stats { json } => {
            let cfg = load_config(&cli)?;
            ops::stats(&cfg, *json).await
        }
        Command::Media(c) => media::run(&load_config(&cli)?, c).await,
        Command::Version => {
            let sqlite: String = {
                let mut conn =
                    <sqlx::SqliteConnection as sqlx::Connection>::connect("sqlite::memory:")
                        .await?;
                sqlx::query_scalar("SELECT sqlite_version()")
                    .fetch_one(&mut conn)
                    .await?
            };
            let schema = crate::store::MIGRATOR
                .iter()
                .map(|m| m.version)
                .max()
                .unwrap_or(0);
            println!(
                "tgparser {} (schema {schema}, SQLite {sqlite})",
                env!("CARGO_PKG_VERSION")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_config(cfg: &Config) -> anyhow::Result<ExitCode> {
    let shown = cfg
        .path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let key = VaultKey::from_file(&cfg.vault.key_file)?;
    let key_mode = std::fs::metadata(&cfg.vault.key_file)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    let mut warnings = cfg.warnings.clone();
    if key_mode & 0o077 != 0 {
        warnings.push(format!(
            "vault.key_file: {} has mode {key_mode:o}, readable by other users; run chmod 600 {}",
            cfg.vault.key_file.display(),
            cfg.vault.key_file.display()
        ));
    }
    println!("{shown}: ok");
    println!("  state directory  {}", cfg.store.dir.display());
    println!(
        "  vault key        {} (key id {})",
        cfg.vault.key_file.display(),
        key.id_hex()
    );
    println!("  health           http://{}", cfg.health.listen);
    println!(
        "  parser           {}",
        if cfg.telegram.is_some() {
            "configured"
        } else {
            "not configured (telegram.api_id, telegram.api_hash_file)"
        }
    );
    println!(
        "  bot              {}",
        if cfg.bot.is_some() {
            "configured"
        } else {
            "not configured (bot.token_file)"
        }
    );
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn rotate_key(cfg: &Config, new_key_out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let _lock = StateLock::acquire(&cfg.store.dir)?;
    let old_key = VaultKey::from_file(&cfg.vault.key_file)?;
    let old = Vault::new(&old_key);
    let store = Store::open(&cfg.store).await?;
    store
        .verify_or_init_vault(&old, &cfg.vault.key_file)
        .await?;

    let in_place = new_key_out.is_none();
    let new_path = match new_key_out {
        Some(p) => p.to_path_buf(),
        None => with_suffix(&cfg.vault.key_file, ".new"),
    };
    let new_key = VaultKey::generate();
    // The new key is on disk (fsynced) before anything is sealed with it.
    new_key.write_new_file(&new_path)?;
    let new = Vault::new(&new_key);
    let count = match store.reseal_all(&old, &new).await {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&new_path);
            store.close().await;
            return Err(anyhow::Error::new(e).context("re-sealing failed; nothing was changed"));
        }
    };
    store
        .audit(
            "cli",
            "rotate-key",
            serde_json::json!({"old_key_id": old.key_id_hex(), "new_key_id": new.key_id_hex(), "values": count}),
        )
        .await?;
    store.close().await;

    if in_place {
        let old_path = with_suffix(&cfg.vault.key_file, ".old");
        std::fs::rename(&cfg.vault.key_file, &old_path).with_context(|| {
            format!(
                "the database is sealed with the new key in {}, but moving the old key aside failed",
                new_path.display()
            )
        })?;
        std::fs::rename(&new_path, &cfg.vault.key_file).with_context(|| {
            format!(
                "the database is sealed with the new key in {}, but moving it into place failed",
                new_path.display()
            )
        })?;
        println!(
            "re-sealed {count} values under key id {}; the new key is in {}, the old one in {} (delete it once you have a backup)",
            new.key_id_hex(),
            cfg.vault.key_file.display(),
            old_path.display()
        );
    } else {
        println!(
            "re-sealed {count} values under key id {}; the new key is in {}. Point vault.key_file at it \
             (or re-encrypt the systemd credential from it) before the next start",
            new.key_id_hex(),
            new_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// GET /readyz on the configured health address. A wildcard bind address is probed on loopback.
fn probe_health(listen: SocketAddr, timeout: Duration) -> ExitCode {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    match http_get(addr, "/readyz", timeout) {
        Ok((code, body)) => {
            let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let status = doc["status"].as_str().unwrap_or("unknown");
            let output = doc["output"].as_str().unwrap_or("");
            println!(
                "{status} (HTTP {code}){}",
                if output.is_empty() {
                    String::new()
                } else {
                    format!(": {output}")
                }
            );
            if code == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("tgparser is not answering on http://{addr}/readyz: {e}");
            ExitCode::from(1)
        }
    }
}

/// A minimal HTTP/1.1 GET for loopback probes; the health port is ours and simple.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: tgparser-health\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response")
        })?;
    Ok((code, body.to_string()))
}
