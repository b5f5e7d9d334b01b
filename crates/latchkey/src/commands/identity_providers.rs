//! `latchkey identity-providers`: OpenID Connect, OAuth 2.0 and SAML 2.0
//! providers whose sign-in is the `sso:<id>` login factor.

use latchkey_types::federation::{IdentityProvider, PutIdentityProvider};
use reqwest::Method;

use super::Admin;
use crate::cli::IdentityProvidersCommand;
use crate::output::{opt, time, Record, Table};

/// Runs one `identity-providers` action.
pub async fn run(admin: &Admin, command: IdentityProvidersCommand) -> anyhow::Result<()> {
    let c = &admin.client;
    match command {
        IdentityProvidersCommand::Put { id, file } => {
            let body: PutIdentityProvider =
                super::read_json_file(&file, "an identity provider's configuration")?;
            let resp = c
                .send(
                    Method::PUT,
                    &["v1", "identity-providers", &id],
                    &[],
                    Some(&body),
                )
                .await?;
            admin.show(&resp, record)
        }
        IdentityProvidersCommand::List { page } => {
            admin
                .list(&["v1", "identity-providers"], &[], &page, table)
                .await
        }
        IdentityProvidersCommand::Get { id } => {
            let resp = c.get(&["v1", "identity-providers", &id], &[]).await?;
            admin.show(&resp, record)
        }
        IdentityProvidersCommand::Delete { id } => {
            let resp = c.delete(&["v1", "identity-providers", &id]).await?;
            admin.done(&resp, &format!("Deleted identity provider {id}."))
        }
    }
}

fn kind(p: &IdentityProvider) -> String {
    serde_json::to_value(p.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Where the provider is: its issuer, its authorization URL, or its SAML
/// entity id.
fn at(p: &IdentityProvider) -> String {
    opt(p
        .issuer
        .as_deref()
        .or(p.authorization_url.as_deref())
        .or(p.entity_id.as_deref()))
}

/// What to register at the provider: the callback, or SAML's ACS.
fn register(p: &IdentityProvider) -> String {
    opt(p.callback_url.as_deref().or(p.acs_url.as_deref()))
}

/// One provider as `key: value` lines.
pub fn record(p: &IdentityProvider) -> String {
    let mut r = Record::new();
    r.field("id", p.id.as_str())
        .field("type", kind(p))
        .field("provider", at(p))
        .field("clientId", opt(p.client_id.as_deref()))
        .field(
            "clientSecret",
            if p.client_secret_set { "set" } else { "-" },
        )
        .field("scopes", p.scopes.join(" "))
        .field(
            "linkBy",
            serde_json::to_value(p.link_by)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        )
        .field(
            "provisioning",
            if p.provisioning.enabled { "on" } else { "off" },
        )
        .field("trustUpstreamMfa", p.trust_upstream_mfa.to_string())
        .field("callbackUrl", opt(p.callback_url.as_deref()));
    if p.acs_url.is_some() {
        r.field("ssoUrl", opt(p.sso_url.as_deref()))
            .field("metadataUrl", opt(p.metadata_url.as_deref()))
            .field("acsUrl", opt(p.acs_url.as_deref()))
            .field("allowSha1", p.allow_sha1.to_string())
            .field(
                "clockSkewSeconds",
                opt(p.clock_skew_seconds.map(|s| s.to_string()).as_deref()),
            );
    }
    r.field("mode", p.mode.as_str())
        .field("updatedAt", time(p.updated_at));
    r.render()
}

/// Providers as a table.
pub fn table(list: &[IdentityProvider]) -> String {
    let mut t = Table::new(&["ID", "TYPE", "PROVIDER", "CALLBACK/ACS"]);
    for p in list {
        t.row([p.id.as_str().to_owned(), kind(p), at(p), register(p)]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_renders_with_its_callback_and_never_a_secret() {
        let p: IdentityProvider = serde_json::from_value(serde_json::json!({
            "id": "corp", "mode": "live", "type": "oidc", "issuer": "https://idp.example",
            "authorizationUrl": null, "tokenUrl": null, "userinfoUrl": null, "clientId": "latchkey",
            "clientSecretSet": true, "scopes": ["openid", "email"], "claimMapping": {},
            "linkBy": "email", "provisioning": {"enabled": false, "tenantId": null, "roles": null, "kind": null},
            "trustUpstreamMfa": true, "callbackUrl": "https://auth.example/auth/sso/corp/callback",
            "metadataUrl": null, "acsUrl": null,
            "createdAt": "2026-12-01T00:00:00Z", "updatedAt": "2026-12-02T00:00:00Z",
        }))
        .unwrap();
        let text = record(&p);
        assert!(text.contains("callbackUrl:"), "{text}");
        assert!(
            text.contains("https://auth.example/auth/sso/corp/callback"),
            "{text}"
        );
        assert!(text.contains("clientSecret:     set"), "{text}");
        assert!(text.contains("linkBy:           email"), "{text}");
        let listed = table(&[p]);
        assert!(
            listed.contains("corp") && listed.contains("oidc"),
            "{listed}"
        );
    }

    #[test]
    fn a_saml_provider_renders_what_to_register_at_the_idp() {
        let p: IdentityProvider = serde_json::from_value(serde_json::json!({
            "id": "corp-saml", "mode": "test", "type": "saml", "issuer": null,
            "authorizationUrl": null, "tokenUrl": null, "userinfoUrl": null, "clientId": null,
            "clientSecretSet": false, "scopes": [], "claimMapping": {},
            "linkBy": "subject", "provisioning": {"enabled": false, "tenantId": null, "roles": null, "kind": null},
            "trustUpstreamMfa": false, "callbackUrl": null,
            "entityId": "https://idp.example/metadata", "ssoUrl": "https://idp.example/sso",
            "allowSha1": false, "clockSkewSeconds": 60,
            "metadataUrl": "https://auth.example/test/auth/saml/corp-saml/metadata",
            "acsUrl": "https://auth.example/test/auth/saml/corp-saml/acs",
            "createdAt": "2026-12-01T00:00:00Z", "updatedAt": "2026-12-02T00:00:00Z",
        }))
        .unwrap();
        let text = record(&p);
        for want in [
            "provider:         https://idp.example/metadata",
            "acsUrl:           https://auth.example/test/auth/saml/corp-saml/acs",
            "metadataUrl:      https://auth.example/test/auth/saml/corp-saml/metadata",
            "clockSkewSeconds: 60",
        ] {
            assert!(text.contains(want), "{want:?} in {text}");
        }
        let listed = table(&[p]);
        assert!(listed.contains("/test/auth/saml/corp-saml/acs"), "{listed}");
    }
}
