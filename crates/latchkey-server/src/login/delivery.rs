//! Sending login codes and links: email over SMTP (lettre, rustls), SMS
//! through a signed HTTPS webhook, and in test mode without a channel the
//! test outbox. A message that cannot be sent is `delivery_failed` (503);
//! the caller then stores nothing, so nothing is consumed.

use std::time::Duration;

use latchkey_core::clock::to_unix_ms;
use latchkey_core::ids;
use latchkey_core::login::codes::{self, Message};
use latchkey_store::OutboxMessage;
use latchkey_types::Mode;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::DeliveryConfig;
use crate::http::error::ApiError;
use crate::state::AppState;

/// How long a send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel a message goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Email.
    Email,
    /// SMS.
    Sms,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

/// The configured channels.
pub struct Delivery {
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    sms: Option<(String, latchkey_core::Secret)>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("smtp", &self.smtp.is_some())
            .field("from", &self.from.to_string())
            .field("sms", &self.sms.is_some())
            .finish()
    }
}

impl Delivery {
    /// The channels of the configuration.
    pub fn new(config: &DeliveryConfig) -> Result<Delivery, String> {
        let smtp = match &config.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| format!("smtp_url is not usable: {e}"))?
                    .timeout(Some(SEND_TIMEOUT))
                    .build(),
            ),
            None => None,
        };
        let from = config
            .mail_from
            .parse()
            .map_err(|e| format!("mail_from is not a mailbox: {e}"))?;
        let sms = match (&config.sms_webhook_url, &config.sms_webhook_secret) {
            (Some(url), Some(secret)) => Some((url.clone(), secret.clone())),
            _ => None,
        };
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the SMS webhook client: {e}"))?;
        Ok(Delivery {
            smtp,
            from,
            sms,
            http,
        })
    }

    /// Whether `channel` can send in `mode` (test mode always can: the
    /// outbox).
    pub fn can_send(&self, mode: Mode, channel: Channel) -> bool {
        mode == Mode::Test
            || match channel {
                Channel::Email => self.smtp.is_some(),
                Channel::Sms => self.sms.is_some(),
            }
    }

    /// Sends `message` to `to` through `channel`.
    pub async fn send(
        &self,
        state: &AppState,
        mode: Mode,
        channel: Channel,
        to: &str,
        message: Message,
    ) -> Result<(), ApiError> {
        let configured = match channel {
            Channel::Email => self.smtp.is_some(),
            Channel::Sms => self.sms.is_some(),
        };
        if !configured {
            if mode == Mode::Live {
                tracing::warn!(
                    channel = channel.as_str(),
                    "no channel to send a live login message"
                );
                return Err(ApiError::DeliveryFailed);
            }
            let now = state.clock.now();
            let outbox = OutboxMessage {
                id: format!("msg_{:013}{}", to_unix_ms(now), ids::random_lower_alnum(6)),
                channel: channel.as_str().to_owned(),
                recipient: to.to_owned(),
                subject: message.subject,
                body: message.text,
                created_at: now,
            };
            return Ok(state.store.outbox_push(&outbox).await?);
        }
        let sent = match channel {
            Channel::Email => self.email(to, message).await,
            Channel::Sms => self.sms(state, to, message).await,
        };
        sent.map_err(|cause| {
            tracing::warn!(channel = channel.as_str(), %cause, "a login message could not be sent");
            ApiError::DeliveryFailed
        })
    }

    async fn email(&self, to: &str, message: Message) -> Result<(), String> {
        let smtp = self.smtp.as_ref().ok_or("no SMTP server")?;
        let to: Mailbox = to
            .parse()
            .map_err(|_| "the address is not a mailbox".to_owned())?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.unwrap_or_default())
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(message.text)
            .map_err(|e| format!("cannot build the email: {e}"))?;
        smtp.send(email)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn sms(&self, state: &AppState, to: &str, message: Message) -> Result<(), String> {
        let (url, secret) = self.sms.as_ref().ok_or("no SMS webhook")?;
        let body = serde_json::to_vec(&serde_json::json!({"to": to, "text": message.text}))
            .map_err(|e| e.to_string())?;
        let signature =
            codes::webhook_signature(secret.expose(), state.clock.now().unix_timestamp(), &body);
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("latchkey-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the SMS webhook is unreachable: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("the SMS webhook answered {}", response.status()));
        }
        Ok(())
    }
}
