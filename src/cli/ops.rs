//! Operator commands on the channel database: `search`, `export`, `backup`, `stats`. They open
//! the database read-only (`Store::open_read_only`): no migration, no write, and — the database
//! being in WAL mode — no lock that could stall a running daemon's writer.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow};

use crate::config::Config;
use crate::store::{
    ExportFilter, MATCH_END, MATCH_START, PostRecord, SearchError, SearchFilter, Store,
};

/// `--since` / `--until` as Unix seconds (UTC dates, or full RFC 3339 times).
pub(super) fn date_arg(flag: &str, value: Option<&str>) -> anyhow::Result<Option<i64>> {
    match value {
        None => Ok(None),
        Some(v) => crate::time::parse_date_time(v).map(Some).ok_or_else(|| {
            anyhow!(
                "--{flag} {v:?} is not a date; write it as YYYY-MM-DD (UTC) or 2026-11-23T08:00:00Z"
            )
        }),
    }
}

pub(super) async fn channel_arg(
    store: &Store,
    channel: Option<&str>,
) -> anyhow::Result<Option<i64>> {
    match channel {
        None => Ok(None),
        Some(c) => match store.find_channel(c).await? {
            Some(ch) => Ok(Some(ch.id)),
            None => Err(anyhow!(
                "{c} is not among the archived channels (`tgparser channels list` shows them)"
            )),
        },
    }
}

pub struct SearchArgs<'a> {
    pub query: &'a str,
    pub channel: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub limit: u32,
    pub json: bool,
}

/// `search --fts`: the FTS5 query a search runs, for sqlite3 and Datasette users (the words cut
/// and folded as the index holds them). Needs no database.
pub fn print_fts(query: &str) -> anyhow::Result<ExitCode> {
    match crate::text::Query::parse(query) {
        Ok(q) if !q.as_words => {
            println!("{}", q.expr.to_fts5());
            Ok(ExitCode::SUCCESS)
        }
        Ok(_) => {
            eprintln!(
                "{query:?} is not valid search syntax (an unbalanced parenthesis or quote, or AND, OR, NOT without words on both sides)"
            );
            Ok(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

pub async fn search(cfg: &Config, a: SearchArgs<'_>) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&cfg.store).await?;
    let filter = SearchFilter {
        channel_id: channel_arg(&store, a.channel).await?,
        since: date_arg("since", a.since)?,
        until: date_arg("until", a.until)?,
        limit: a.limit.clamp(1, 10_000),
        offset: 0,
    };
    // Operators write syntax on purpose: a malformed query is an error, not read as words.
    let found = match store.search(a.query, &filter, false).await {
        Ok(f) => f,
        Err(e @ SearchError::Query { .. }) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
        Err(SearchError::Store(e)) => return Err(e.into()),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    if a.json {
        for h in &found.hits {
            // The match markers are for terminals; scripts get the snippet plain.
            let line = serde_json::json!({
                "channel_id": h.channel_id,
                "channel_username": h.username,
                "channel_title": h.title,
                "id": h.id,
                "date": crate::store::iso(h.date),
                "deleted": h.deleted,
                "link": h.link(),
                "snippet": h.snippet.replace([MATCH_START, MATCH_END], ""),
            });
            writeln!(out, "{line}")?;
        }
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        if found.hits.is_empty() {
            writeln!(out, "no posts match {:?}", a.query)?;
        }
        for h in &found.hits {
            let channel = h
                .username
                .as_deref()
                .map(|u| format!("@{u}"))
                .unwrap_or_else(|| h.title.clone());
            let snippet: String = h
                .snippet
                .chars()
                .map(|c| match c {
                    '\n' | '\r' => ' '.to_string(),
                    MATCH_START if color => "\x1b[1;33m".into(),
                    MATCH_END if color => "\x1b[0m".into(),
                    MATCH_START | MATCH_END => "*".into(),
                    c => c.to_string(),
                })
                .collect();
            writeln!(
                out,
                "{}  {:<20}  {}{}\n    {}",
                crate::store::iso(h.date),
                channel,
                h.link(),
                if h.deleted { "  (deleted)" } else { "" },
                snippet
            )?;
        }
    }
    out.flush()?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

pub struct ExportArgs<'a> {
    pub channel: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub query: Option<&'a str>,
    pub format: Format,
    pub with_history: bool,
    pub with_media_paths: bool,
    pub out: Option<&'a Path>,
}

/// `p` made absolute against the working directory (a path in an export outlives the
/// directory it was made in).
fn absolute(p: &Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// CSV columns, in order. JSON columns are written as their JSON text.
const CSV_COLUMNS: &[&str] = &[
    "channel_id",
    "channel_username",
    "channel_title",
    "id",
    "link",
    "kind",
    "date",
    "edit_date",
    "text",
    "entities",
    "views",
    "forwards",
    "replies",
    "reactions",
    "grouped_id",
    "reply_to_msg_id",
    "reply_to_top_id",
    "fwd_from",
    "post_author",
    "from_id",
    "pinned",
    "silent",
    "noforwards",
    "media_kind",
    "media",
    "action",
    "convert_error",
    "version",
    "deleted",
    "deleted_at",
];

/// One CSV field, quoted when it must be (RFC 4180: commas, quotes, newlines).
fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

fn csv_row(r: &PostRecord, history: bool, out: &mut Vec<u8>) {
    let flat = |v: &Option<Option<String>>| v.clone().flatten().unwrap_or_default();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let raw = |v: &Option<Box<serde_json::value::RawValue>>| {
        v.as_ref().map(|r| r.get().to_string()).unwrap_or_default()
    };
    let mut fields = vec![
        r.channel_id.to_string(),
        opt(&r.channel_username),
        r.channel_title.clone(),
        r.id.to_string(),
        r.link.clone(),
        r.kind.clone(),
        r.date.clone(),
        opt(&r.edit_date),
        r.text.clone(),
        raw(&r.entities),
        num(r.views),
        num(r.forwards),
        num(r.replies),
        raw(&r.reactions),
        num(r.grouped_id),
        num(r.reply_to_msg_id),
        num(r.reply_to_top_id),
        raw(&r.fwd_from),
        opt(&r.post_author),
        num(r.from_id),
        u8::from(r.pinned).to_string(),
        u8::from(r.silent).to_string(),
        u8::from(r.noforwards).to_string(),
        opt(&r.media_kind),
        raw(&r.media),
        raw(&r.action),
        opt(&r.convert_error),
        r.version.to_string(),
        u8::from(r.deleted).to_string(),
        opt(&r.deleted_at),
    ];
    if r.media_state.is_some() {
        fields.push(flat(&r.media_path));
        fields.push(flat(&r.media_state));
    }
    if history {
        fields.push(
            r.history
                .as_ref()
                .and_then(|h| serde_json::to_string(h).ok())
                .unwrap_or_else(|| "[]".into()),
        );
    }
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, f);
    }
    out.extend_from_slice(b"\r\n");
}

pub async fn export(cfg: &Config, a: ExportArgs<'_>) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&cfg.store).await?;
    let filter = ExportFilter {
        channel_id: channel_arg(&store, a.channel).await?,
        since: date_arg("since", a.since)?,
        until: date_arg("until", a.until)?,
        query: a.query.map(str::to_string),
        with_history: a.with_history,
        limit: None,
        media_root: a
            .with_media_paths
            .then(|| absolute(&cfg.store.dir).to_string_lossy().into_owned()),
    };
    // Written to FILE.partial and renamed at the end, so a failed export never leaves a file
    // that looks complete.
    let (mut sink, partial): (Box<dyn Write>, Option<std::path::PathBuf>) = match a.out {
        Some(p) => {
            let partial = p.with_file_name(format!(
                "{}.partial",
                p.file_name().and_then(|n| n.to_str()).unwrap_or("export")
            ));
            let f = std::fs::File::create(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?;
            (
                Box::new(BufWriter::with_capacity(1 << 20, f)),
                Some(partial),
            )
        }
        None => (
            Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
            None,
        ),
    };
    // A progress bar when a person watches (stderr on a terminal) and the data goes elsewhere.
    let bar = (std::io::stderr().is_terminal()
        && (a.out.is_some() || !std::io::stdout().is_terminal()))
    .then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} posts exported ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b
    });
    let mut buf = Vec::with_capacity(4096);
    if a.format == Format::Csv {
        let mut header = CSV_COLUMNS.join(",");
        if a.with_media_paths {
            header.push_str(",media_path,media_state");
        }
        if a.with_history {
            header.push_str(",history");
        }
        header.push_str("\r\n");
        sink.write_all(header.as_bytes())?;
    }
    let mut write_error = None;
    let t = Instant::now();
    let result = if a.format == Format::Jsonl {
        store
            .export_jsonl(&filter, |lines, n| {
                if let Err(e) = sink.write_all(lines) {
                    write_error = Some(anyhow!("writing the export: {e}"));
                    return false;
                }
                if let Some(b) = &bar {
                    b.inc(n);
                }
                true
            })
            .await
    } else {
        store
            .export(&filter, |rec| {
                buf.clear();
                match a.format {
                    Format::Jsonl => {
                        if let Err(e) = serde_json::to_writer(&mut buf, &rec) {
                            write_error = Some(anyhow!("encoding post {}: {e}", rec.id));
                            return false;
                        }
                        buf.push(b'\n');
                    }
                    Format::Csv => csv_row(&rec, a.with_history, &mut buf),
                }
                if let Err(e) = sink.write_all(&buf) {
                    write_error = Some(anyhow!("writing the export: {e}"));
                    return false;
                }
                if let Some(b) = &bar {
                    b.inc(1);
                }
                true
            })
            .await
    };
    let n = match result {
        Ok(n) => n,
        Err(e @ SearchError::Query { .. }) => {
            if let Some(p) = &partial {
                let _ = std::fs::remove_file(p);
            }
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
        Err(SearchError::Store(e)) => return Err(e.into()),
    };
    if let Some(e) = write_error {
        if let Some(p) = &partial {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    sink.flush()?;
    drop(sink);
    if let (Some(partial), Some(out)) = (&partial, a.out) {
        std::fs::rename(partial, out)
            .with_context(|| format!("cannot move the export to {}", out.display()))?;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = t.elapsed().as_secs_f64();
    if a.out.is_some() || !std::io::stdout().is_terminal() {
        eprintln!(
            "exported {n} posts in {secs:.1} s{}",
            a.out
                .map(|p| format!(" to {}", p.display()))
                .unwrap_or_default()
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `backup FILE`: a consistent copy while the daemon runs (`VACUUM INTO` reads one snapshot),
/// then verified with `PRAGMA integrity_check` before it is put in place.
pub async fn backup(cfg: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    if file.exists() {
        return Err(anyhow!(
            "{} exists; backup never overwrites: choose a new name",
            file.display()
        ));
    }
    let store = Store::open_read_only(&cfg.store).await?;
    let partial = file.with_file_name(format!(
        "{}.partial",
        file.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("backup")
    ));
    let _ = std::fs::remove_file(&partial);
    let t = Instant::now();
    let target = partial
        .to_str()
        .ok_or_else(|| anyhow!("the backup path must be UTF-8"))?
        .to_string();
    sqlx::query("VACUUM INTO ?")
        .bind(&target)
        .execute(store.reader())
        .await
        .with_context(|| format!("writing the backup to {}", partial.display()))?;
    let took = t.elapsed();
    store.close().await;
    // The copy holds sealed session keys: owner-only, like the database.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))?;
    }
    let check = {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&partial)
                .read_only(true),
        )
        .await?;
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await?;
        let posts: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        (rows, posts)
    };
    if check.0 != ["ok"] {
        return Err(anyhow!(
            "the backup {} failed its integrity check ({}); it was kept for inspection, the original is untouched",
            partial.display(),
            check.0.join("; ")
        ));
    }
    std::fs::rename(&partial, file)?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup written to {} ({} posts, {:.1} MB, {:.1} s); integrity_check: ok",
        file.display(),
        check.1,
        size as f64 / 1e6,
        took.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// A row of `v_channel_stats`.
#[derive(sqlx::FromRow, serde::Serialize)]
struct ChannelStats {
    channel_id: i64,
    channel_username: Option<String>,
    channel_title: String,
    state: String,
    posts: i64,
    first_post: Option<String>,
    last_post: Option<String>,
    backfill_percent: f64,
    edits: i64,
    deletions: i64,
}

/// `stats`: per-channel counts (the `v_channel_stats` view), and totals.
pub async fn stats(cfg: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&cfg.store).await?;
    let rows: Vec<ChannelStats> = sqlx::query_as(
        "SELECT channel_id, channel_username, channel_title, state, posts, first_post, last_post, \
         backfill_percent, edits, deletions FROM v_channel_stats ORDER BY posts DESC, channel_id",
    )
    .fetch_all(store.reader())
    .await?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if json {
        for r in &rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        writeln!(
            out,
            "{:<24} {:<28} {:>10} {:>9} {:>8} {:>9}  {:<20}  {:<20}  state",
            "channel", "title", "posts", "backfill", "edits", "deleted", "first post", "last post"
        )?;
        for r in &rows {
            let title: String = r.channel_title.chars().take(27).collect();
            writeln!(
                out,
                "{:<24} {:<28} {:>10} {:>8.1}% {:>8} {:>9}  {:<20}  {:<20}  {}",
                r.channel_username
                    .as_deref()
                    .map(|u| format!("@{u}"))
                    .unwrap_or_else(|| r.channel_id.to_string()),
                title,
                r.posts,
                r.backfill_percent,
                r.edits,
                r.deletions,
                r.first_post.as_deref().unwrap_or("-"),
                r.last_post.as_deref().unwrap_or("-"),
                r.state
            )?;
        }
        let total: i64 = rows.iter().map(|r| r.posts).sum();
        writeln!(out, "{} channels, {total} posts", rows.len())?;
    }
    out.flush()?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        let mut out = Vec::new();
        csv_field(&mut out, "plain");
        out.push(b'|');
        csv_field(&mut out, "a, \"quoted\"\nline");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain|\"a, \"\"quoted\"\"\nline\""
        );
    }
}
