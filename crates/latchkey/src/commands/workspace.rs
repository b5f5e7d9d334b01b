//! `latchkey workspace`: the root tenant as the admin key's mode sees it.

use latchkey_types::admin::Workspace;

use super::Admin;
use crate::output::Record;

/// `GET /v1/workspace`.
pub async fn run(admin: &Admin) -> anyhow::Result<()> {
    let resp = admin.client.get(&["v1", "workspace"], &[]).await?;
    admin.show(&resp, render)
}

/// The workspace as `key: value` lines.
pub fn render(w: &Workspace) -> String {
    Record::new()
        .field("id", w.id.as_str())
        .field("name", w.name.as_str())
        .field("mode", w.mode.as_str())
        .field("issuer", w.issuer.as_str())
        .field("tokenTtlSeconds", w.token_ttl_seconds.to_string())
        .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_renders_as_a_record() {
        let w: Workspace = serde_json::from_str(
            r#"{"id":"k3x9a0bq","name":"Acme","mode":"test","issuer":"http://127.0.0.1:8080","tokenTtlSeconds":3600}"#,
        )
        .unwrap();
        assert_eq!(
            render(&w),
            "id:              k3x9a0bq\n\
             name:            Acme\n\
             mode:            test\n\
             issuer:          http://127.0.0.1:8080\n\
             tokenTtlSeconds: 3600\n"
        );
    }
}
