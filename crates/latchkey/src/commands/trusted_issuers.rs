//! `latchkey trusted-issuers`: issuers whose JWTs the token endpoint
//! exchanges for Latchkey tokens (workload identity federation).

use latchkey_types::federation::{PutTrustedIssuer, TrustedIssuer, WorkloadRule};
use reqwest::Method;

use super::Admin;
use crate::cli::TrustedIssuersCommand;
use crate::output::{time, Record, Table};

/// Runs one `trusted-issuers` action.
pub async fn run(admin: &Admin, command: TrustedIssuersCommand) -> anyhow::Result<()> {
    let c = &admin.client;
    match command {
        TrustedIssuersCommand::Put { id, file } => {
            let body: PutTrustedIssuer =
                super::read_json_file(&file, "a trusted issuer's configuration")?;
            let resp = c
                .send(
                    Method::PUT,
                    &["v1", "trusted-issuers", &id],
                    &[],
                    Some(&body),
                )
                .await?;
            admin.show(&resp, record)
        }
        TrustedIssuersCommand::List { page } => {
            admin
                .list(&["v1", "trusted-issuers"], &[], &page, table)
                .await
        }
        TrustedIssuersCommand::Get { id } => {
            let resp = c.get(&["v1", "trusted-issuers", &id], &[]).await?;
            admin.show(&resp, record)
        }
        TrustedIssuersCommand::Delete { id } => {
            let resp = c.delete(&["v1", "trusted-issuers", &id]).await?;
            admin.done(&resp, &format!("Deleted trusted issuer {id}."))
        }
    }
}

/// Where the keys come from.
fn keys(t: &TrustedIssuer) -> String {
    match (&t.jwks_uri, &t.jwks) {
        (Some(uri), _) => uri.clone(),
        (None, Some(jwks)) => {
            let n = jwks
                .get("keys")
                .and_then(|k| k.as_array())
                .map_or(0, Vec::len);
            format!("static JWKS ({n} keys)")
        }
        (None, None) => "-".into(),
    }
}

/// One rule on one line: `when → whom (tenant, roles, ttl)`.
fn rule(r: &WorkloadRule) -> String {
    let when: Vec<String> = r.when.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let whom = match &r.user_id {
        Some(user) => user.as_str().to_owned(),
        None => "provision".into(),
    };
    let mut bounds = Vec::new();
    if let Some(tenant) = &r.tenant_id {
        bounds.push(format!("tenant {}", tenant.as_str()));
    }
    if let Some(roles) = &r.roles {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        bounds.push(format!("roles {}", names.join(",")));
    }
    if let Some(ttl) = r.ttl_seconds {
        bounds.push(format!("ttl {ttl}s"));
    }
    let bounds = if bounds.is_empty() {
        String::new()
    } else {
        format!(" ({})", bounds.join("; "))
    };
    format!("{} -> {whom}{bounds}", when.join(" "))
}

/// One trusted issuer as `key: value` lines, a line per rule.
pub fn record(t: &TrustedIssuer) -> String {
    let mut r = Record::new();
    r.field("id", t.id.as_str())
        .field("issuer", t.issuer.as_str())
        .field("keys", keys(t))
        .field("audiences", t.audiences.join(" "));
    // In order: the first that matches wins.
    for each in &t.rules {
        r.field("rule", rule(each));
    }
    r.field("mode", t.mode.as_str())
        .field("updatedAt", time(t.updated_at))
        .render()
}

/// Trusted issuers as a table.
pub fn table(list: &[TrustedIssuer]) -> String {
    let mut t = Table::new(&["ID", "ISSUER", "KEYS", "RULES"]);
    for i in list {
        t.row([
            i.id.as_str().to_owned(),
            i.issuer.clone(),
            keys(i),
            i.rules.len().to_string(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> TrustedIssuer {
        serde_json::from_value(serde_json::json!({
            "id": "github", "mode": "live", "issuer": "https://token.actions.githubusercontent.com",
            "jwksUri": "https://token.actions.githubusercontent.com/.well-known/jwks",
            "jwks": null, "audiences": ["https://auth.example.com"],
            "rules": [
                {"when": {"repository": "acme/*", "ref": "refs/heads/main"}, "userId": "usr_deploy",
                 "tenantId": "prod", "roles": ["deployer"], "ttlSeconds": 600},
                {"when": {"sub": "repo:acme/*"}, "provision": {}, "tenantId": "ci"},
            ],
            "createdAt": "2026-12-01T00:00:00Z", "updatedAt": "2026-12-02T00:00:00Z",
        }))
        .unwrap()
    }

    #[test]
    fn a_trusted_issuer_renders_with_a_line_per_rule() {
        let text = record(&trusted());
        assert!(text.contains("issuer:"), "{text}");
        assert!(
            text.contains("ref=refs/heads/main repository=acme/* -> usr_deploy (tenant prod; roles deployer; ttl 600s)"),
            "{text}"
        );
        assert!(
            text.contains("sub=repo:acme/* -> provision (tenant ci)"),
            "{text}"
        );
        let table = table(&[trusted()]);
        assert!(table.starts_with("ID"), "{table}");
        assert!(table.contains("github"), "{table}");
    }
}
