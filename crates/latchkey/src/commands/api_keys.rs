//! `latchkey api-keys`: create, list, read, revoke and rotate API keys. A
//! key's value is shown once, in the answer to `create` or `rotate`, and
//! never again.

use latchkey_types::api_keys::{ApiKey, CreateApiKey, CreatedApiKey, RateLimit, RotateApiKey};
use reqwest::Method;

use super::Admin;
use crate::cli::ApiKeysCommand;
use crate::output::{json_inline, list, opt, opt_time, time, Record, Table, NONE};

/// Runs one `api-keys` action.
pub async fn run(admin: &Admin, command: ApiKeysCommand) -> anyhow::Result<()> {
    let c = &admin.client;
    match command {
        ApiKeysCommand::Create(a) => {
            let body = CreateApiKey {
                user_id: a.user,
                tenant_id: a.tenant,
                name: a.name,
                // No --role: the key carries every role of the user there.
                roles: (!a.roles.is_empty()).then_some(a.roles),
                expires_at: a.expires_at,
                metadata: a.metadata,
                ratelimit: a.rate_limit,
                remaining: a.remaining,
            };
            let resp = c
                .send(Method::POST, &["v1", "api-keys"], &[], Some(&body))
                .await?;
            admin.show(&resp, created)
        }
        ApiKeysCommand::List(a) => {
            let filters = [("userId", a.user), ("tenantId", a.tenant)];
            admin
                .list(&["v1", "api-keys"], &filters, &a.page, table)
                .await
        }
        ApiKeysCommand::Get { id } => {
            let resp = c.get(&["v1", "api-keys", &id], &[]).await?;
            admin.show(&resp, record)
        }
        ApiKeysCommand::Revoke { id } => {
            let resp = c.delete(&["v1", "api-keys", &id]).await?;
            admin.done(
                &resp,
                &format!("Revoked API key {id}: every value of it stops working now."),
            )
        }
        ApiKeysCommand::Rotate { id, grace_period } => {
            let body = RotateApiKey {
                grace_period_seconds: grace_period,
            };
            let path = ["v1", "api-keys", &id, "rotate"];
            let resp = c.send(Method::POST, &path, &[], Some(&body)).await?;
            admin.show(&resp, |k: &CreatedApiKey| {
                rotated(k, grace_period.unwrap_or(0))
            })
        }
    }
}

/// The key value set apart, after `heading` and the shown-once warning.
fn value_block(heading: &str, key: &str) -> String {
    format!(
        "{heading} Copy it now: it is shown only this once and cannot be retrieved later.\n\n    {key}\n\n"
    )
}

/// A new key: the value first and set apart, with the warning, then the
/// rest of the record.
pub fn created(k: &CreatedApiKey) -> String {
    let mut out = value_block("New API key.", &k.key);
    out.push_str(&record(&k.api_key));
    out
}

/// A rotated key: the new value, what happens to the previous one, and the
/// record.
pub fn rotated(k: &CreatedApiKey, grace_seconds: i64) -> String {
    let mut out = value_block(&format!("New value of API key {}.", k.api_key.id), &k.key);
    if grace_seconds > 0 {
        out.push_str(&format!(
            "The previous value keeps working for {grace_seconds} more seconds.\n\n"
        ));
    } else {
        out.push_str("The previous value stopped working.\n\n");
    }
    out.push_str(&record(&k.api_key));
    out
}

/// `100/60s`, or [`NONE`].
fn rate_limit(r: Option<RateLimit>) -> String {
    r.map_or_else(
        || NONE.to_owned(),
        |r| format!("{}/{}s", r.limit, r.window_seconds),
    )
}

/// One key (never its value) as `key: value` lines.
pub fn record(k: &ApiKey) -> String {
    Record::new()
        .field("id", k.id.as_str())
        .field("userId", k.user_id.as_str())
        .field("tenantId", k.tenant_id.as_str())
        .field("name", opt(k.name.as_deref()))
        .field(
            "roles",
            k.roles
                .as_deref()
                .map_or_else(|| "- (all of the user's roles there)".to_owned(), list),
        )
        .field("ratelimit", rate_limit(k.ratelimit))
        .field(
            "remaining",
            k.remaining
                .map_or_else(|| "- (unlimited)".to_owned(), |r| r.to_string()),
        )
        .field("metadata", json_inline(&k.metadata))
        .field("expiresAt", opt_time(k.expires_at))
        .field("revokedAt", opt_time(k.revoked_at))
        .field("lastUsedAt", opt_time(k.last_used_at))
        .field("mode", k.mode.as_str())
        .field("createdAt", time(k.created_at))
        .render()
}

/// Keys (never their values) as a table.
pub fn table(keys: &[ApiKey]) -> String {
    let mut t = Table::new(&[
        "ID",
        "USER",
        "TENANT",
        "NAME",
        "ROLES",
        "EXPIRES",
        "REVOKED",
        "LAST USED",
    ]);
    for k in keys {
        t.row([
            k.id.clone(),
            k.user_id.clone(),
            k.tenant_id.clone(),
            opt(k.name.as_deref()),
            k.roles.as_deref().map_or_else(|| "(all)".to_owned(), list),
            opt_time(k.expires_at),
            opt_time(k.revoked_at),
            opt_time(k.last_used_at),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, roles: Option<&[&str]>, remaining: Option<i64>) -> ApiKey {
        serde_json::from_value(serde_json::json!({
            "id": id, "userId": "usr_1", "tenantId": "eu", "name": null, "roles": roles,
            "metadata": {"site": "a"}, "ratelimit": {"limit": 100, "windowSeconds": 60},
            "remaining": remaining, "expiresAt": null, "revokedAt": null, "lastUsedAt": null,
            "mode": "test", "createdAt": "2025-03-04T05:06:07Z"
        }))
        .unwrap()
    }

    fn created_key() -> CreatedApiKey {
        CreatedApiKey {
            key: "lk_test_key_SHOWNONCE".into(),
            api_key: key("key_1", Some(&["operator"]), Some(1000)),
        }
    }

    #[test]
    fn a_new_key_is_shown_set_apart_with_a_warning() {
        let text = created(&created_key());
        assert!(text.starts_with("New API key. Copy it now"), "{text}");
        assert!(text.contains("shown only this once"), "{text}");
        assert!(text.contains("\n\n    lk_test_key_SHOWNONCE\n\n"), "{text}");
        assert!(text.contains("\nroles:      operator\n"), "{text}");
        assert!(text.contains("\nratelimit:  100/60s\n"), "{text}");
        assert!(text.contains("\nremaining:  1000\n"), "{text}");
    }

    #[test]
    fn a_rotated_key_says_what_happens_to_the_previous_value() {
        let k = created_key();
        let text = rotated(&k, 300);
        assert!(text.starts_with("New value of API key key_1."), "{text}");
        assert!(text.contains("\n    lk_test_key_SHOWNONCE\n"), "{text}");
        assert!(
            text.contains("keeps working for 300 more seconds"),
            "{text}"
        );
        assert!(rotated(&k, 0).contains("The previous value stopped working."));
    }

    #[test]
    fn a_key_without_roles_or_budget_says_so() {
        let text = record(&key("key_2", None, None));
        assert!(
            text.contains("\nroles:      - (all of the user's roles there)\n"),
            "{text}"
        );
        assert!(text.contains("\nremaining:  - (unlimited)\n"), "{text}");
    }

    #[test]
    fn keys_render_as_a_table_without_values() {
        let list = [
            key("key_1", Some(&["operator", "reader"]), None),
            key("key_22", None, Some(3)),
        ];
        assert_eq!(
            table(&list),
            "ID      USER   TENANT  NAME  ROLES             EXPIRES  REVOKED  LAST USED\n\
             key_1   usr_1  eu      -     operator, reader  -        -        -\n\
             key_22  usr_1  eu      -     (all)             -        -        -\n"
        );
    }
}
