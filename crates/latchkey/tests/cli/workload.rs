//! The README's workload walk-throughs, command by command: a trusted
//! issuer put from a JSON file, and `latchkey token --subject-token-file`
//! exchanging a Kubernetes-shaped service-account token (signed by a key
//! this test holds, published as a static JWKS) with no secret stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::signing::{Algorithm, SigningKey};
use serde_json::{json, Value};

use crate::helpers::*;

const CLUSTER: &str = "https://kubernetes.default.svc.cluster.local";

/// A compact JWS of `claims` signed by `key`, as a cluster signs tokens.
fn signed(key: &SigningKey, claims: &Value) -> String {
    let header = json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "JWT"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_exchanges_its_service_account_token_with_no_secret() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let user = server
        .admin_json(&["users", "create", "--name", "billing"])
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = SigningKey::generate(Algorithm::RS256).unwrap();
    let audience = format!("{}/test", server.url);
    let config = json!({
        "issuer": CLUSTER,
        "jwks": {"keys": [key.public_jwk()]},
        "audiences": [audience],
        "rules": [{
            "when": {"kubernetes.io.namespace": "prod", "kubernetes.io.serviceaccount.name": "billing"},
            "userId": user, "ttlSeconds": 900,
        }],
    });
    let config_file = dir.path().join("trusted-issuer.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let out = server
        .admin(&[
            "trusted-issuers",
            "put",
            "cluster-eu",
            "--file",
            config_file.to_str().unwrap(),
        ])
        .await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains(CLUSTER), "{text}");
    assert!(text.contains("static JWKS (1 keys)"), "{text}");
    assert!(
        text.contains(&format!(
            "kubernetes.io.namespace=prod kubernetes.io.serviceaccount.name=billing -> {user} (ttl 900s)"
        )),
        "{text}"
    );
    let listed = server.admin(&["trusted-issuers", "list"]).await;
    assert!(
        stdout(&listed).contains("cluster-eu"),
        "{}",
        stdout(&listed)
    );

    // The projected token, where the kubelet would mount it.
    let t = now();
    let token = signed(
        &key,
        &json!({
            "iss": CLUSTER, "aud": [audience], "iat": t, "nbf": t, "exp": t + 3600,
            "sub": "system:serviceaccount:prod:billing",
            "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "billing", "uid": "1"}},
        }),
    );
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let out = server
        .run(
            &[],
            &[
                "token",
                "--subject-token-file",
                token_file.to_str().unwrap(),
                "--decode",
            ],
        )
        .await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains(&format!("\"sub\": \"{user}\"")), "{text}");
    assert!(text.contains("\"act\""), "{text}");
    assert!(
        text.contains("system:serviceaccount:prod:billing"),
        "{text}"
    );
    assert_not_echoed(&out, &token);
    // A token of another namespace gets nothing, and says why in OAuth's words.
    let other = signed(
        &key,
        &json!({
            "iss": CLUSTER, "aud": [audience], "iat": t, "exp": t + 3600,
            "sub": "system:serviceaccount:dev:billing",
            "kubernetes.io": {"namespace": "dev", "serviceaccount": {"name": "billing"}},
        }),
    );
    std::fs::write(&token_file, other).unwrap();
    let out = server
        .run(
            &[],
            &[
                "token",
                "--subject-token-file",
                token_file.to_str().unwrap(),
            ],
        )
        .await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with("error: invalid_grant"),
        "{}",
        stderr(&out)
    );
    let out = server
        .admin(&["trusted-issuers", "delete", "cluster-eu"])
        .await;
    assert_success(&out);
}
