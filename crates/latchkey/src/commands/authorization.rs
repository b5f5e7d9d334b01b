//! `latchkey authorization`: the `authorization` claim a token of a user,
//! scoped to a tenant, would carry.

use latchkey_types::admin::Authorization;

use super::Admin;
use crate::output::{list, Table};

/// `GET /v1/users/{id}/authorization?tenantId=`.
pub async fn run(admin: &Admin, user: &str, tenant: Option<String>) -> anyhow::Result<()> {
    let resp = admin
        .client
        .get(
            &["v1", "users", user, "authorization"],
            &[("tenantId", tenant)],
        )
        .await?;
    admin.show(&resp, table)
}

/// Tenant → effective roles, as a table.
pub fn table(authorization: &Authorization) -> String {
    let mut t = Table::new(&["TENANT", "ROLES"]);
    for (tenant, roles) in authorization {
        t.row([tenant.clone(), list(&roles.roles)]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_renders_as_a_table() {
        let a: Authorization = serde_json::from_str(
            r#"{"acme":{"roles":["reader","writer"]},"acme-eu":{"roles":[]}}"#,
        )
        .unwrap();
        assert_eq!(
            table(&a),
            "TENANT   ROLES\n\
             acme     reader, writer\n\
             acme-eu  -\n"
        );
    }
}
