//! `latchkey users`: create, read, list, change and delete users, machines
//! and people alike.

use latchkey_types::admin::{CreateUser, UpdateUser, User};
use latchkey_types::UserKind;
use reqwest::Method;

use super::Admin;
use crate::cli::{UserUpdate, UsersCommand};
use crate::output::{json_inline, opt, time, Record, Table};

/// Runs one `users` action.
pub async fn run(admin: &Admin, command: UsersCommand) -> anyhow::Result<()> {
    let c = &admin.client;
    match command {
        UsersCommand::Create(a) => {
            let body = CreateUser {
                kind: a.kind.map(UserKind::from),
                external_id: a.external_id,
                name: a.name,
                email: a.email,
                username: a.username,
                phone_number: a.phone,
                email_verified: a.email_verified.then_some(true),
                phone_verified: a.phone_verified.then_some(true),
                metadata: a.metadata,
                custom_claims: a.custom_claims,
                disabled: a.disabled.then_some(true),
                token_ttl_seconds: a.token_ttl_seconds,
            };
            let resp = c
                .send(Method::POST, &["v1", "users"], &[], Some(&body))
                .await?;
            admin.show(&resp, record)
        }
        UsersCommand::Get { id } => {
            let resp = c.get(&["v1", "users", &id], &[]).await?;
            admin.show(&resp, record)
        }
        UsersCommand::List(a) => {
            let filters = [
                (
                    "kind",
                    a.kind.map(|k| UserKind::from(k).as_str().to_owned()),
                ),
                ("tenantId", a.tenant),
            ];
            admin.list(&["v1", "users"], &filters, &a.page, table).await
        }
        UsersCommand::Update(a) => {
            let id = a.id.clone();
            let body = update_body(a);
            let resp = c
                .send(Method::PATCH, &["v1", "users", &id], &[], Some(&body))
                .await?;
            admin.show(&resp, record)
        }
        UsersCommand::Delete { id } => {
            let resp = c.delete(&["v1", "users", &id]).await?;
            admin.done(&resp, &format!("Deleted user {id}."))
        }
    }
}

/// The PATCH body: absent fields are kept, `--clear-*` sends `null`.
fn update_body(a: UserUpdate) -> UpdateUser {
    let nullable = |value: Option<String>, clear: bool| {
        if clear {
            Some(None)
        } else {
            value.map(Some)
        }
    };
    UpdateUser {
        name: a.name,
        email: nullable(a.email, a.clear_email),
        username: nullable(a.username, a.clear_username),
        phone_number: nullable(a.phone, a.clear_phone),
        email_verified: a.email_verified,
        phone_verified: a.phone_verified,
        metadata: a.metadata,
        custom_claims: a.custom_claims,
        disabled: match (a.enable, a.disable) {
            (true, _) => Some(false),
            (_, true) => Some(true),
            _ => None,
        },
        token_ttl_seconds: if a.clear_token_ttl {
            Some(None)
        } else {
            a.token_ttl_seconds.map(Some)
        },
    }
}

/// One user as `key: value` lines.
pub fn record(u: &User) -> String {
    Record::new()
        .field("id", u.id.as_str())
        .field("kind", u.kind.as_str())
        .field("name", u.name.as_str())
        .field("email", opt(u.email.as_deref()))
        .field("username", opt(u.username.as_deref()))
        .field("phoneNumber", opt(u.phone_number.as_deref()))
        .field("emailVerified", u.email_verified.to_string())
        .field("phoneVerified", u.phone_verified.to_string())
        .field("disabled", u.disabled.to_string())
        .field(
            "tokenTtlSeconds",
            u.token_ttl_seconds
                .map_or_else(|| "- (workspace default)".to_owned(), |s| s.to_string()),
        )
        .field("metadata", json_inline(&u.metadata))
        .field("customClaims", json_inline(&u.custom_claims))
        .field("mode", u.mode.as_str())
        .field("createdAt", time(u.created_at))
        .field("updatedAt", time(u.updated_at))
        .render()
}

/// Users as a table.
pub fn table(users: &[User]) -> String {
    let mut t = Table::new(&["ID", "KIND", "NAME", "EMAIL", "DISABLED", "CREATED"]);
    for u in users {
        t.row([
            u.id.clone(),
            u.kind.as_str().to_owned(),
            u.name.clone(),
            opt(u.email.as_deref()),
            u.disabled.to_string(),
            time(u.created_at),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command, UsersArgs};

    fn user(id: &str, kind: &str, email: Option<&str>) -> User {
        serde_json::from_value(serde_json::json!({
            "id": id, "kind": kind, "name": "Sensor 1", "email": email, "username": null,
            "phoneNumber": null, "metadata": {}, "customClaims": {"site": "a"},
            "disabled": false, "tokenTtlSeconds": null, "mode": "test",
            "createdAt": "2025-03-04T05:06:07Z", "updatedAt": "2025-03-05T05:06:07Z"
        }))
        .unwrap()
    }

    fn update(flags: &[&str]) -> UserUpdate {
        let argv = ["latchkey", "users", "update", "usr_1"]
            .into_iter()
            .chain(flags.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Users(UsersArgs {
                command: UsersCommand::Update(u),
                ..
            }) => u,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_user_renders_as_a_record() {
        let text = record(&user("usr_1", "machine", None));
        assert!(
            text.starts_with("id:              usr_1\nkind:            machine\n"),
            "{text}"
        );
        assert!(text.contains("\nemail:           -\n"), "{text}");
        assert!(
            text.contains("\ntokenTtlSeconds: - (workspace default)\n"),
            "{text}"
        );
        assert!(
            text.contains("\ncustomClaims:    {\"site\":\"a\"}\n"),
            "{text}"
        );
    }

    #[test]
    fn users_render_as_a_table() {
        let list = [
            user("usr_1", "machine", None),
            user("usr_22", "human", Some("a@b.example")),
        ];
        assert_eq!(
            table(&list),
            "ID      KIND     NAME      EMAIL        DISABLED  CREATED\n\
             usr_1   machine  Sensor 1  -            false     2025-03-04T05:06:07Z\n\
             usr_22  human    Sensor 1  a@b.example  false     2025-03-04T05:06:07Z\n"
        );
    }

    #[test]
    fn update_sends_only_what_changed_and_null_to_clear() {
        let body =
            serde_json::to_value(update_body(update(&["--clear-email", "--disable"]))).unwrap();
        assert_eq!(body["email"], serde_json::Value::Null);
        assert!(body.as_object().unwrap().contains_key("email"));
        assert!(!body.as_object().unwrap().contains_key("username"));
        assert_eq!(body["disabled"], true);

        let body = serde_json::to_value(update_body(update(&[
            "--enable",
            "--token-ttl-seconds",
            "60",
        ])))
        .unwrap();
        assert_eq!(body["disabled"], false);
        assert_eq!(body["tokenTtlSeconds"], 60);

        let body = serde_json::to_value(update_body(update(&["--clear-token-ttl"]))).unwrap();
        assert!(body["tokenTtlSeconds"].is_null());
        assert!(body.as_object().unwrap().contains_key("tokenTtlSeconds"));
    }
}
