//! `latchkey roles`: the role catalog, which permissions each role grants.

use latchkey_types::admin::{PutRole, Role};
use reqwest::Method;

use super::Admin;
use crate::cli::RolesCommand;
use crate::output::{opt, time, Record, Table, NONE};

/// Runs one `roles` action.
pub async fn run(admin: &Admin, command: RolesCommand) -> anyhow::Result<()> {
    let c = &admin.client;
    match command {
        RolesCommand::Set(a) => {
            let body = PutRole {
                permissions: a.permissions,
                description: a.description,
            };
            let resp = c
                .send(Method::PUT, &["v1", "roles", &a.name], &[], Some(&body))
                .await?;
            admin.show(&resp, record)
        }
        RolesCommand::List { page } => admin.list(&["v1", "roles"], &[], &page, table).await,
        RolesCommand::Get { name } => {
            let resp = c.get(&["v1", "roles", &name], &[]).await?;
            admin.show(&resp, record)
        }
        RolesCommand::Delete { name } => {
            let resp = c.delete(&["v1", "roles", &name]).await?;
            admin.done(&resp, &format!("Deleted role {name}."))
        }
    }
}

/// Permissions space-separated, as in an OAuth `scope`.
fn permissions(p: &[String]) -> String {
    if p.is_empty() {
        NONE.to_owned()
    } else {
        p.join(" ")
    }
}

/// One role as `key: value` lines.
pub fn record(r: &Role) -> String {
    Record::new()
        .field("name", r.name.as_str())
        .field("permissions", permissions(&r.permissions))
        .field("description", opt(r.description.as_deref()))
        .field("mode", r.mode.as_str())
        .field("updatedAt", time(r.updated_at))
        .render()
}

/// Roles as a table.
pub fn table(roles: &[Role]) -> String {
    let mut t = Table::new(&["NAME", "PERMISSIONS", "DESCRIPTION"]);
    for r in roles {
        t.row([
            r.name.clone(),
            permissions(&r.permissions),
            opt(r.description.as_deref()),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, perms: &[&str], description: Option<&str>) -> Role {
        serde_json::from_value(serde_json::json!({
            "name": name, "permissions": perms, "description": description,
            "mode": "live", "updatedAt": "2025-03-04T05:06:07Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_role_renders_as_a_record() {
        assert_eq!(
            record(&role(
                "writer",
                &["telemetry:write", "telemetry:read"],
                None
            )),
            "name:        writer\n\
             permissions: telemetry:write telemetry:read\n\
             description: -\n\
             mode:        live\n\
             updatedAt:   2025-03-04T05:06:07Z\n"
        );
    }

    #[test]
    fn roles_render_as_a_table() {
        let list = [
            role("admin", &[], Some("Everything")),
            role("writer", &["telemetry:write"], None),
        ];
        assert_eq!(
            table(&list),
            "NAME    PERMISSIONS      DESCRIPTION\n\
             admin   -                Everything\n\
             writer  telemetry:write  -\n"
        );
    }
}
