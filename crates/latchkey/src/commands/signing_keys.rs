//! `latchkey signing-keys`: the signing keys of the admin key's mode, and
//! their rotation.

use latchkey_types::oauth::{RotateSigningKey, SigningKeyInfo};
use reqwest::Method;

use super::Admin;
use crate::cli::{PageArgs, SigningKeysCommand};
use crate::output::{opt_time, time, Record, Table};

/// Runs one `signing-keys` action.
pub async fn run(admin: &Admin, command: SigningKeysCommand) -> anyhow::Result<()> {
    match command {
        SigningKeysCommand::List => {
            admin
                .list(&["v1", "signing-keys"], &[], &PageArgs::default(), table)
                .await
        }
        SigningKeysCommand::Rotate { alg, immediate } => {
            let body = RotateSigningKey {
                alg,
                immediate: Some(immediate),
            };
            let resp = admin
                .client
                .send(
                    Method::POST,
                    &["v1", "signing-keys", "rotate"],
                    &[],
                    Some(&body),
                )
                .await?;
            admin.show(&resp, record)
        }
    }
}

/// One key as `key: value` lines.
pub fn record(k: &SigningKeyInfo) -> String {
    Record::new()
        .field("kid", k.kid.as_str())
        .field("alg", k.alg.as_str())
        .field("mode", k.mode.as_str())
        .field("status", k.status.as_str())
        .field("createdAt", time(k.created_at))
        .field("activatesAt", time(k.activates_at))
        .field("retiresAt", opt_time(k.retires_at))
        .field("removedAt", opt_time(k.removed_at))
        .render()
}

/// Keys as a table.
pub fn table(keys: &[SigningKeyInfo]) -> String {
    let mut t = Table::new(&["KID", "ALG", "STATUS", "ACTIVATES", "RETIRES", "REMOVED"]);
    for k in keys {
        t.row([
            k.kid.clone(),
            k.alg.clone(),
            k.status.clone(),
            time(k.activates_at),
            opt_time(k.retires_at),
            opt_time(k.removed_at),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_render_as_a_table_with_their_phase() {
        let keys: Vec<SigningKeyInfo> = serde_json::from_str(
            r#"[{"kid":"k1","alg":"EdDSA","mode":"test","status":"retired",
                 "createdAt":"2026-01-01T00:00:00Z","activatesAt":"2026-01-01T00:00:00Z",
                 "retiresAt":"2026-02-01T00:00:00Z","removedAt":"2026-02-02T00:01:00Z",
                 "publicJwk":{"kty":"OKP","kid":"k1","alg":"EdDSA","use":"sig","crv":"Ed25519","x":"AA"}}]"#,
        )
        .unwrap();
        let out = table(&keys);
        assert!(out.starts_with("KID"), "{out}");
        assert!(
            out.contains("k1") && out.contains("retired") && out.contains("2026-02-01T00:00:00Z")
        );
        assert!(record(&keys[0]).contains("status:      retired"));
    }
}
