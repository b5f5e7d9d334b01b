//! `latchkey secrets`: a user's client secrets. The value is shown once, in
//! the answer to `create`, and never again.

use latchkey_types::admin::{ClientSecret, CreateSecret, CreatedSecret};
use reqwest::Method;

use super::Admin;
use crate::cli::SecretsCommand;
use crate::output::{opt, opt_time, time, Record, Table};

/// Runs one `secrets` action.
pub async fn run(admin: &Admin, command: SecretsCommand) -> anyhow::Result<()> {
    let c = &admin.client;
    match command {
        SecretsCommand::Create(a) => {
            let body = CreateSecret {
                name: a.name,
                expires_at: a.expires_at,
            };
            let path = ["v1", "users", &a.user, "secrets"];
            let resp = c.send(Method::POST, &path, &[], Some(&body)).await?;
            admin.show(&resp, created)
        }
        SecretsCommand::List { user, page } => {
            admin
                .list(&["v1", "users", &user, "secrets"], &[], &page, table)
                .await
        }
        SecretsCommand::Delete { user, secret_id } => {
            let resp = c
                .delete(&["v1", "users", &user, "secrets", &secret_id])
                .await?;
            admin.done(
                &resp,
                &format!("Deleted secret {secret_id} of user {user}."),
            )
        }
    }
}

/// A new secret: the value first and set apart, with the warning, then the
/// rest of the record.
pub fn created(s: &CreatedSecret) -> String {
    let mut out = String::from(
        "New client secret. Copy it now: it is shown only this once and cannot be retrieved later.\n\n",
    );
    out.push_str("    ");
    out.push_str(&s.secret);
    out.push_str("\n\n");
    out.push_str(
        &Record::new()
            .field("id", s.id.as_str())
            .field("userId", s.user_id.as_str())
            .field("name", opt(s.name.as_deref()))
            .field("createdAt", time(s.created_at))
            .field("expiresAt", opt_time(s.expires_at))
            .render(),
    );
    out
}

/// Secrets (never their values) as a table.
pub fn table(secrets: &[ClientSecret]) -> String {
    let mut t = Table::new(&["ID", "NAME", "CREATED", "EXPIRES"]);
    for s in secrets {
        t.row([
            s.id.clone(),
            opt(s.name.as_deref()),
            time(s.created_at),
            opt_time(s.expires_at),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_secret_is_shown_set_apart_with_a_warning() {
        let s: CreatedSecret = serde_json::from_value(serde_json::json!({
            "id": "sec_1", "userId": "usr_1", "name": "edge-host", "secret": "lk_test_secret_abc",
            "createdAt": "2025-03-04T05:06:07Z", "expiresAt": null
        }))
        .unwrap();
        let text = created(&s);
        assert!(text.contains("shown only this once"), "{text}");
        assert!(text.contains("\n\n    lk_test_secret_abc\n\n"), "{text}");
        assert!(
            text.ends_with(
                "id:        sec_1\n\
             userId:    usr_1\n\
             name:      edge-host\n\
             createdAt: 2025-03-04T05:06:07Z\n\
             expiresAt: -\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn secrets_render_as_a_table() {
        let list: Vec<ClientSecret> = serde_json::from_value(serde_json::json!([
            {"id": "sec_1", "userId": "usr_1", "name": null,
             "createdAt": "2025-03-04T05:06:07Z", "expiresAt": "2026-01-01T00:00:00Z"},
            {"id": "sec_22", "userId": "usr_1", "name": "ci",
             "createdAt": "2025-03-04T05:06:07Z", "expiresAt": null}
        ]))
        .unwrap();
        assert_eq!(
            table(&list),
            "ID      NAME  CREATED               EXPIRES\n\
             sec_1   -     2025-03-04T05:06:07Z  2026-01-01T00:00:00Z\n\
             sec_22  ci    2025-03-04T05:06:07Z  -\n"
        );
    }
}
