//! `fake-telegram serve`: the fake Telegram as a standalone process for demos, manual testing
//! and other clients (Telethon). Prints one JSON line with everything a client needs.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::flood::QuotaMode;
use fake_telegram::world::PushMode;
use fake_telegram::{FakeTelegram, Options};

#[derive(Parser)]
#[command(
    name = "fake-telegram",
    version,
    about = "A fake Telegram (MTProto + Bot API) for offline tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MTProto, the Bot API and the control API until interrupted.
    Serve {
        #[arg(long, default_value = "127.0.0.1:0")]
        mtproto: SocketAddr,
        #[arg(long = "bot-api", default_value = "127.0.0.1:0")]
        bot_api: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:0")]
        control: SocketAddr,
        /// Channels in the generated world.
        #[arg(long, default_value_t = 3)]
        channels: usize,
        /// Posts per channel.
        #[arg(long, default_value_t = 200)]
        posts: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = QuotaMode::Default)]
        quotas: QuotaMode,
        /// The test account has no 2FA password.
        #[arg(long)]
        no_2fa: bool,
        /// Do not enforce the Bot API's rate limits.
        #[arg(long)]
        no_bot_limits: bool,
        /// Never gzip MTProto answers.
        #[arg(long)]
        no_gzip: bool,
        /// Add latency to every MTProto and Bot API call, in milliseconds.
        #[arg(long)]
        latency_ms: Option<u64>,
        /// Answer the next N MTProto calls with rpc_error 500.
        #[arg(long)]
        rpc_errors: Option<u32>,
        /// Who gets pushed channel updates: `members` (as Telegram: accounts that joined, and
        /// not reliably past 100 channels), `none` (clients must poll), `all` (lenient).
        #[arg(long, value_enum, default_value_t = PushMode::Members)]
        pushes: PushMode,
        /// Inject a fault, as the control API's POST /faults takes it, e.g.
        /// '{"kind":"too_many","retry_after":5,"method":"sendMessage","count":3}'. Repeatable.
        #[arg(long = "fault", value_name = "JSON")]
        faults: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve {
        mtproto,
        bot_api,
        control,
        channels,
        posts,
        seed,
        quotas,
        no_2fa,
        no_bot_limits,
        no_gzip,
        latency_ms,
        rpc_errors,
        pushes,
        faults,
    } = Cli::parse().command;
    let mut parsed = Vec::new();
    for f in &faults {
        match serde_json::from_str::<Fault>(f) {
            Ok(f) => parsed.push(f),
            Err(e) => {
                eprintln!("--fault {f}: not a fault ({e}); see the README's Faults table");
                std::process::exit(2);
            }
        }
    }
    let defaults = Options::default();
    let fake = FakeTelegram::start(Options {
        mtproto,
        bot_api,
        control,
        channels,
        posts,
        seed,
        quotas,
        password: if no_2fa {
            None
        } else {
            defaults.password.clone()
        },
        bot_limits: !no_bot_limits,
        gzip_over: if no_gzip { None } else { defaults.gzip_over },
        pushes,
        ..defaults
    })
    .await?;
    if let Some(ms) = latency_ms {
        fake.faults.add(Fault {
            kind: FaultKind::Latency { ms },
            method: None,
            count: 0,
        });
    }
    if let Some(n) = rpc_errors {
        fake.faults.add(Fault {
            kind: FaultKind::Rpc500,
            method: None,
            count: n,
        });
    }
    for f in parsed {
        fake.faults.add(f);
    }
    println!("{}", serde_json::to_string(&fake.info).unwrap_or_default());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
