//! `latchkey tenants`: create, read, list, change and delete tenants.

use latchkey_types::admin::{CreateTenant, Tenant, UpdateTenant};
use reqwest::Method;

use super::Admin;
use crate::cli::TenantsCommand;
use crate::output::{json_inline, opt, time, Record, Table};

/// Runs one `tenants` action.
pub async fn run(admin: &Admin, command: TenantsCommand) -> anyhow::Result<()> {
    let c = &admin.client;
    match command {
        TenantsCommand::Create(a) => {
            let body = CreateTenant {
                id: a.id,
                name: a.name,
                parent_id: a.parent,
                // Only send `cascade` when the user chose a boundary, so the
                // server's default applies otherwise.
                cascade: a.no_cascade.then_some(false),
                metadata: a.metadata,
            };
            let resp = c
                .send(Method::POST, &["v1", "tenants"], &[], Some(&body))
                .await?;
            admin.show(&resp, record)
        }
        TenantsCommand::Get { id } => {
            let resp = c.get(&["v1", "tenants", &id], &[]).await?;
            admin.show(&resp, record)
        }
        TenantsCommand::List(a) => {
            admin
                .list(
                    &["v1", "tenants"],
                    &[("parentId", a.parent)],
                    &a.page,
                    table,
                )
                .await
        }
        TenantsCommand::Update(a) => {
            let body = UpdateTenant {
                name: a.name,
                parent_id: a.parent,
                cascade: a.cascade,
                metadata: a.metadata,
            };
            let resp = c
                .send(Method::PATCH, &["v1", "tenants", &a.id], &[], Some(&body))
                .await?;
            admin.show(&resp, record)
        }
        TenantsCommand::Delete { id } => {
            let resp = c.delete(&["v1", "tenants", &id]).await?;
            admin.done(&resp, &format!("Deleted tenant {id}."))
        }
    }
}

/// One tenant as `key: value` lines.
pub fn record(t: &Tenant) -> String {
    Record::new()
        .field("id", t.id.as_str())
        .field("name", t.name.as_str())
        .field("parentId", opt(t.parent_id.as_deref()))
        .field("cascade", t.cascade.to_string())
        .field("metadata", json_inline(&t.metadata))
        .field("mode", t.mode.as_str())
        .field("createdAt", time(t.created_at))
        .render()
}

/// Tenants as a table.
pub fn table(tenants: &[Tenant]) -> String {
    let mut t = Table::new(&["ID", "NAME", "PARENT", "CASCADE", "CREATED"]);
    for x in tenants {
        t.row([
            x.id.clone(),
            x.name.clone(),
            opt(x.parent_id.as_deref()),
            x.cascade.to_string(),
            time(x.created_at),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str, parent: Option<&str>, cascade: bool) -> Tenant {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": format!("Tenant {id}"), "parentId": parent, "cascade": cascade,
            "metadata": {"plan": "pro"}, "mode": "test", "createdAt": "2025-03-04T05:06:07Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_tenant_renders_as_a_record() {
        assert_eq!(
            record(&tenant("acme", Some("ws1"), false)),
            "id:        acme\n\
             name:      Tenant acme\n\
             parentId:  ws1\n\
             cascade:   false\n\
             metadata:  {\"plan\":\"pro\"}\n\
             mode:      test\n\
             createdAt: 2025-03-04T05:06:07Z\n"
        );
    }

    #[test]
    fn tenants_render_as_a_table() {
        let list = [
            tenant("ws1", None, true),
            tenant("eu-west", Some("ws1"), false),
        ];
        assert_eq!(
            table(&list),
            "ID       NAME            PARENT  CASCADE  CREATED\n\
             ws1      Tenant ws1      -       true     2025-03-04T05:06:07Z\n\
             eu-west  Tenant eu-west  ws1     false    2025-03-04T05:06:07Z\n"
        );
    }
}
