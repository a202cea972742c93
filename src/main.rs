use std::process::ExitCode;

use clap::Parser;
use tgparser::cli::{self, Cli};

fn main() -> ExitCode {
    // A panic in a part is caught and the part restarted by the supervisor; its message goes to
    // the log like everything else (with the journald priority under systemd).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if tracing::dispatcher::has_been_set() {
            tracing::error!(panic = %info, "a task panicked");
        } else {
            default_hook(info);
        }
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tgparser")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            // Under systemd the `<3>` prefix files this at error priority in the journal.
            let prio = if std::env::var_os("JOURNAL_STREAM").is_some() {
                "<3>"
            } else {
                ""
            };
            eprintln!("{prio}error: {e:#}");
            ExitCode::from(cli::exit_code_for(&e))
        }
    }
}
