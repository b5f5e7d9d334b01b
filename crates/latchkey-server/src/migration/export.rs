//! `GET /v1/export`: the mode's records as NDJSON, read page by page and
//! sent as they are read, so memory stays flat however large the mode.

use axum::body::{Body, Bytes};
use latchkey_store::{ExportSection, StoreError};
use latchkey_types::Mode;
use tokio::sync::mpsc;

use crate::state::AppState;

/// Records per page read from the store.
pub const PAGE: usize = 1000;

/// The export's body: a task reads pages and sends them; a client that goes
/// away stops it. A store error ends the body early (the client sees a
/// truncated transfer, never a partial record).
pub fn body(state: AppState, mode: Mode) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        if let Err(e) = send_all(&state, mode, &tx).await {
            tracing::warn!(error = %e, "an export ended early");
            let _ = tx
                .send(Err(std::io::Error::other("the export could not be read")))
                .await;
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn send_all(
    state: &AppState,
    mode: Mode,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), StoreError> {
    for section in ExportSection::ALL {
        let mut cursor: Option<String> = None;
        loop {
            let (records, next) = state
                .store
                .export_page(mode, section, cursor.as_deref(), PAGE)
                .await?;
            let mut chunk = Vec::with_capacity(records.len() * 256);
            for record in &records {
                serde_json::to_writer(&mut chunk, record)?;
                chunk.push(b'\n');
            }
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return Ok(()); // the client went away
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    Ok(())
}
