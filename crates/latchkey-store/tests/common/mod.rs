//! What the store suites share: an audit event for any write, and the
//! value of a successful write.

use latchkey_store::{StoreError, Written};
use latchkey_types::audit::{AuditAction, AuditActor, AuditEvent, AuditTarget};
use latchkey_types::{JsonObject, Mode};
use time::OffsetDateTime;

/// A test audit event for any write (a fresh id each time).
pub fn rec<T>() -> impl FnOnce(&T) -> AuditEvent + Send {
    |_| AuditEvent {
        id: latchkey_core::ids::new_prefixed_id("evt"),
        time: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        mode: Some(Mode::Test),
        action: AuditAction::UserUpdated,
        actor: AuditActor::system(),
        target: AuditTarget::new("user", "usr_x"),
        tenant_id: None,
        source_address: None,
        details: JsonObject::new(),
    }
}

/// The value of a successful write.
pub trait Value<T> {
    fn v(self) -> T;
}

impl<T> Value<T> for Result<Written<T>, StoreError> {
    fn v(self) -> T {
        self.unwrap().into_parts().0
    }
}

/// Runs each named `async fn(&Store)` as a test on a fresh SQLite database
/// and, when `LATCHKEY_TEST_POSTGRES_URL` is set, a fresh PostgreSQL one.
#[allow(unused_macros)]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = latchkey_store::Store::open_sqlite(dir.path()).await.unwrap();
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(url) = latchkey_store::testing::fresh_postgres_url().await else {
                        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
                        return;
                    };
                    let store = latchkey_store::Store::connect(&url).await.unwrap();
                    super::$name(&store).await;
                }
            )*
        }
    };
}
