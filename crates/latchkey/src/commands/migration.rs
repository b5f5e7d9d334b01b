//! `latchkey import FILE` and `latchkey export`: the NDJSON file streamed to
//! `POST /v1/import` with a progress line, then the server's summary; the
//! export streamed from `GET /v1/export` to stdout.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use latchkey_types::migration::ImportSummary;
use tokio::io::AsyncReadExt;

use super::Admin;
use crate::output::emit;

const CHUNK: usize = 256 * 1024;

/// Sends `file` (or stdin for `-`) and prints the summary; exits 1 when a
/// line was refused.
pub async fn import(
    admin: &Admin,
    file: &Path,
    dry_run: bool,
    atomic: bool,
) -> anyhow::Result<ExitCode> {
    let (mut reader, total): (Box<dyn tokio::io::AsyncRead + Unpin + Send>, Option<u64>) =
        if file == Path::new("-") {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let f = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("cannot open {}", file.display()))?;
            let len = f.metadata().await.ok().map(|m| m.len());
            (Box::new(f), len)
        };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let tty = std::io::stderr().is_terminal();
    let reading = tokio::spawn(async move {
        let mut sent: u64 = 0;
        let mut shown = Instant::now() - Duration::from_secs(1);
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return sent;
                }
            };
            buf.truncate(n);
            sent += n as u64;
            if tx.send(Ok(buf)).await.is_err() {
                return sent;
            }
            if tty && shown.elapsed() >= Duration::from_millis(200) {
                shown = Instant::now();
                progress(sent, total);
            }
        }
        if tty {
            progress(sent, total);
            eprint!("\n  sent; the server is finishing the import…\r");
        }
        sent
    });
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let query = [
        ("dryRun", dry_run.then(|| "true".to_owned())),
        ("atomic", atomic.then(|| "true".to_owned())),
    ];
    let result = admin
        .client
        .post_body(&["v1", "import"], &query, "application/x-ndjson", body)
        .await;
    let sent = reading.await.unwrap_or(0);
    if tty {
        eprintln!("{:60}", "");
    }
    let resp = result?;
    let summary: ImportSummary = resp.parse()?;
    if admin.json {
        emit(&resp.body)?;
    } else {
        emit(&describe(&summary, sent, dry_run))?;
    }
    Ok(match summary.error_count {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

fn progress(sent: u64, total: Option<u64>) {
    let mb = |b: u64| b as f64 / 1_000_000.0;
    let line = match total {
        Some(t) if t > 0 => {
            let pct = (sent as f64 / t as f64 * 100.0).min(100.0);
            let filled = (pct / 5.0) as usize;
            format!(
                "  [{}{}] {pct:5.1}%  {:.1} / {:.1} MB",
                "#".repeat(filled),
                " ".repeat(20 - filled.min(20)),
                mb(sent),
                mb(t)
            )
        }
        _ => format!("  {:.1} MB sent", mb(sent)),
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r{line}");
    let _ = err.flush();
}

/// The summary for people.
fn describe(s: &ImportSummary, sent: u64, dry_run: bool) -> String {
    let mut out = format!(
        "{}{} created, {} updated, {} unchanged, {} refused ({:.1} MB read)\n",
        if dry_run {
            "dry run, nothing written: "
        } else {
            ""
        },
        s.created,
        s.updated,
        s.unchanged,
        s.error_count,
        sent as f64 / 1_000_000.0
    );
    if !dry_run && !s.written && s.error_count > 0 {
        out.push_str("atomic import refused: nothing was written\n");
    }
    for e in s.errors.iter().take(20) {
        out.push_str(&format!("line {}: {} {}\n", e.line, e.code, e.detail));
    }
    if s.error_count > 20 {
        out.push_str(&format!(
            "… and {} more (--json lists up to 1000)\n",
            s.error_count - 20
        ));
    }
    out
}

/// Streams the export to stdout.
pub async fn export(admin: &Admin) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let result = admin
        .client
        .get_chunks(&["v1", "export"], |chunk| {
            out.write_all(chunk).context("writing to stdout")
        })
        .await;
    out.flush().ok();
    result
}
