//! The test outbox: messages of test mode sent without a delivery channel,
//! for tests and local development to read (`GET /v1/test-outbox`). Live
//! mode never writes here. Kept for a day.

use latchkey_core::clock::to_unix_ms;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::records::time_of;
use crate::{Conditions, PageRequest, PageResult, Store, StoreResult};

/// A message in the test outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// `msg_…`, in sending order.
    pub id: String,
    /// `email` or `sms`.
    pub channel: String,
    /// The address or number.
    pub recipient: String,
    /// The subject (email).
    pub subject: Option<String>,
    /// The text.
    pub body: String,
    /// When it was sent.
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, channel, recipient, subject, body, created_at";

fn message_of(row: &AnyRow) -> StoreResult<OutboxMessage> {
    Ok(OutboxMessage {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        created_at: time_of(row, "created_at")?,
    })
}

impl Store {
    /// Puts a test-mode message in the outbox, and drops messages a day old.
    pub async fn outbox_push(&self, message: &OutboxMessage) -> StoreResult<()> {
        let _timer = self.timed("outbox_push");
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM test_outbox WHERE created_at < $1")
            .bind(to_unix_ms(message.created_at) - 24 * 3600 * 1000)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO test_outbox ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&message.id)
        .bind(&message.channel)
        .bind(&message.recipient)
        .bind(message.subject.as_deref())
        .bind(&message.body)
        .bind(to_unix_ms(message.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The outbox, oldest first, for one recipient when given.
    pub async fn outbox(
        &self,
        recipient: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<PageResult<OutboxMessage>> {
        let _timer = self.timed("outbox");
        let mut c = Conditions::default();
        if let Some(to) = recipient {
            c.push("recipient = {}", to);
        }
        c.fetch_page(
            &self.pool,
            COLUMNS,
            "test_outbox",
            "id",
            page,
            message_of,
            |m| m.id.clone(),
        )
        .await
    }
}
