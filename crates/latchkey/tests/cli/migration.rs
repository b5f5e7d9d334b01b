//! `latchkey import` and `latchkey export` against the real server.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn import_reports_what_it_did_and_export_writes_it_back() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("legacy.ndjson");
    let good = "{\"type\":\"tenant\",\"id\":\"eu\",\"name\":\"EU\"}\n\
                {\"type\":\"user\",\"externalId\":\"svc-1\",\"name\":\"Billing\"}\n\
                {\"type\":\"api_key\",\"user\":{\"externalId\":\"svc-1\"},\"tenantId\":\"eu\",\
                 \"key\":\"sk_live_4eC39HqLyjWDarjtT1zdp7dc\"}\n";
    std::fs::write(&file, good).unwrap();
    let path = file.to_str().unwrap();

    let out = server.admin(&["import", path, "--dry-run"]).await;
    assert_success(&out);
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        "dry run, nothing written: 3 created, 0 updated, 0 unchanged, 0 refused (0.0 MB read)"
    );
    let out = server.admin(&["import", path]).await;
    assert_success(&out);
    assert!(
        stdout(&out).starts_with("3 created, 0 updated, 0 unchanged, 0 refused"),
        "{}",
        stdout(&out)
    );
    let out = server.admin(&["import", path]).await;
    assert!(
        stdout(&out).starts_with("0 created, 0 updated, 3 unchanged"),
        "{}",
        stdout(&out)
    );

    std::fs::write(
        &file,
        format!("{good}{{\"type\":\"tenant\",\"name\":\"no id\"}}\n"),
    )
    .unwrap();
    let out = server.admin(&["import", path]).await;
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("line 4: invalid_request missing field `id`"),
        "{}",
        stdout(&out)
    );

    let out = server.admin(&["export"]).await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        !text.contains("sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        "no plain key: {text}"
    );
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records
        .iter()
        .any(|r| r["type"] == "tenant" && r["id"] == "eu"));
    assert!(records.iter().any(|r| r["type"] == "api_key"
        && r["legacy"] == true
        && r["keyHash"]["algorithm"] == "sha256"));

    let out = server.admin(&["import", "/nonexistent.ndjson"]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("cannot open /nonexistent.ndjson"),
        "{}",
        stderr(&out)
    );
}
