//! `latchkey audit`: the audit log, newest first, with filters.

use latchkey_types::audit::AuditEvent;

use super::Admin;
use crate::cli::AuditQueryArgs;
use crate::output::{opt, time, Table};

/// Lists audit events.
pub async fn run(admin: &Admin, args: AuditQueryArgs) -> anyhow::Result<()> {
    let filters = [
        ("action", args.action),
        ("actorId", args.actor),
        ("targetId", args.target),
        ("tenantId", args.tenant),
        ("since", args.since),
        ("until", args.until),
    ];
    admin
        .list(&["v1", "audit-events"], &filters, &args.page, table)
        .await
}

/// Events as a table.
pub fn table(events: &[AuditEvent]) -> String {
    let mut t = Table::new(&["TIME", "ACTION", "ACTOR", "TARGET", "TENANT", "SOURCE"]);
    for e in events {
        let actor = match &e.actor.id {
            Some(id) => format!("{}:{id}", e.actor.kind),
            None => e.actor.kind.clone(),
        };
        t.row([
            time(e.time),
            e.action.to_string(),
            actor,
            format!("{}:{}", e.target.kind, e.target.id),
            opt(e.tenant_id.as_deref()),
            opt(e.source_address.as_deref()),
        ]);
    }
    t.render()
}
