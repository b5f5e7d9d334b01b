//! `latchkey members`: the roles a user holds directly in a tenant.

use latchkey_types::admin::{Membership, SetRoles};
use reqwest::Method;

use super::Admin;
use crate::cli::MembersCommand;
use crate::output::{list, time, Record, Table};

/// Runs one `members` action.
pub async fn run(admin: &Admin, command: MembersCommand) -> anyhow::Result<()> {
    let c = &admin.client;
    match command {
        MembersCommand::Set(a) => {
            let ending = a.roles.is_empty();
            let body = SetRoles { roles: a.roles };
            let path = ["v1", "tenants", &a.tenant, "users", &a.user, "roles"];
            let resp = c.send(Method::PUT, &path, &[], Some(&body)).await?;
            // Ending a membership may answer 204 or the emptied membership;
            // either way there is nothing left to show.
            if ending || resp.body.trim().is_empty() {
                let message = if ending {
                    format!("Removed user {} from tenant {}.", a.user, a.tenant)
                } else {
                    format!("Set the roles of user {} in tenant {}.", a.user, a.tenant)
                };
                admin.done(&resp, &message)
            } else {
                admin.show(&resp, record)
            }
        }
        MembersCommand::List { tenant, page } => {
            admin
                .list(&["v1", "tenants", &tenant, "users"], &[], &page, table)
                .await
        }
    }
}

/// One membership as `key: value` lines.
pub fn record(m: &Membership) -> String {
    Record::new()
        .field("tenantId", m.tenant_id.as_str())
        .field("userId", m.user_id.as_str())
        .field("roles", list(&m.roles))
        .field("updatedAt", time(m.updated_at))
        .render()
}

/// Memberships of one tenant as a table.
pub fn table(members: &[Membership]) -> String {
    let mut t = Table::new(&["USER", "ROLES", "UPDATED"]);
    for m in members {
        t.row([m.user_id.clone(), list(&m.roles), time(m.updated_at)]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(user: &str, roles: &[&str]) -> Membership {
        serde_json::from_value(serde_json::json!({
            "tenantId": "acme", "userId": user, "roles": roles,
            "updatedAt": "2025-03-04T05:06:07Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_membership_renders_as_a_record() {
        assert_eq!(
            record(&membership("usr_1", &["reader", "writer"])),
            "tenantId:  acme\n\
             userId:    usr_1\n\
             roles:     reader, writer\n\
             updatedAt: 2025-03-04T05:06:07Z\n"
        );
    }

    #[test]
    fn members_render_as_a_table() {
        let list = [
            membership("usr_1", &["reader"]),
            membership("usr_abc", &["admin", "writer"]),
        ];
        assert_eq!(
            table(&list),
            "USER     ROLES          UPDATED\n\
             usr_1    reader         2025-03-04T05:06:07Z\n\
             usr_abc  admin, writer  2025-03-04T05:06:07Z\n"
        );
    }
}
