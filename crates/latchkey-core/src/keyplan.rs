//! The signing-key schedule, as a pure function of time.
//!
//! Each key has a `not_before`: from then on it signs, until the next key's
//! `not_before`. A key is published in the JWKS from its creation (so a new
//! key is known to every verifier before it signs, when it was created ahead
//! of time) until every token it can have signed has expired: the next key's
//! `not_before` plus the longest token lifetime. After that it leaves.

use latchkey_types::Mode;

/// What the schedule needs to know about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledKey {
    /// Key id.
    pub kid: String,
    /// The mode whose tokens it signs.
    pub mode: Mode,
    /// Creation (publication) time, in the caller's time unit.
    pub created_at: i64,
    /// When it starts signing, in the same unit.
    pub not_before: i64,
}

/// Where a key is in its life at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPhase {
    /// Published, not signing yet.
    Next,
    /// The key that signs.
    Active,
    /// No longer signing; published while its tokens may be alive.
    Retired,
    /// No longer published.
    Removed,
}

impl KeyPhase {
    /// Lowercase name for the API.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPhase::Next => "next",
            KeyPhase::Active => "active",
            KeyPhase::Retired => "retired",
            KeyPhase::Removed => "removed",
        }
    }
}

/// One key's place in the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// Key id.
    pub kid: String,
    /// Mode.
    pub mode: Mode,
    /// Phase at the time asked.
    pub phase: KeyPhase,
    /// When it stops signing (the successor's `not_before`), if known.
    pub retires_at: Option<i64>,
    /// When it leaves the JWKS, if known.
    pub removed_at: Option<i64>,
}

/// The schedule evaluated at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlan {
    /// Every key with its phase, in schedule order per mode.
    pub keys: Vec<KeyState>,
    /// The signing key per mode (`None` only if a mode has no key whose
    /// `not_before` has passed).
    pub signing: Vec<(Mode, String)>,
    /// The next instant at which any phase changes.
    pub next_change: Option<i64>,
}

impl KeyPlan {
    /// The kid that signs tokens of `mode`.
    pub fn signing_kid(&self, mode: Mode) -> Option<&str> {
        self.signing
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, k)| k.as_str())
    }

    /// Kids published in the JWKS.
    pub fn published(&self) -> impl Iterator<Item = &KeyState> {
        self.keys.iter().filter(|k| k.phase != KeyPhase::Removed)
    }
}

/// Evaluates the schedule at `now`; `max_token_ttl` is the longest lifetime
/// a token signed by any key can have. All times share one unit (the server
/// uses milliseconds, so two keys made in the same second still order).
pub fn plan(keys: &[ScheduledKey], now: i64, max_token_ttl: i64) -> KeyPlan {
    let mut states = Vec::new();
    let mut signing = Vec::new();
    let mut changes: Vec<i64> = Vec::new();
    for mode in Mode::ALL {
        let mut ordered: Vec<&ScheduledKey> = keys.iter().filter(|k| k.mode == mode).collect();
        ordered.sort_by(|a, b| {
            (a.not_before, a.created_at, &a.kid).cmp(&(b.not_before, b.created_at, &b.kid))
        });
        // The signer is the latest key whose not_before has passed; before
        // any has, the earliest one signs (so a mode never goes dark).
        let signer = ordered
            .iter()
            .rposition(|k| k.not_before <= now)
            .or(if ordered.is_empty() { None } else { Some(0) });
        for (i, key) in ordered.iter().enumerate() {
            let retires_at = ordered.get(i + 1).map(|n| n.not_before);
            let removed_at = retires_at.map(|r| r + max_token_ttl);
            let phase = match signer {
                Some(s) if s == i => KeyPhase::Active,
                Some(s) if i > s => KeyPhase::Next,
                _ => match removed_at {
                    Some(gone) if now >= gone => KeyPhase::Removed,
                    _ => KeyPhase::Retired,
                },
            };
            for t in [Some(key.not_before), removed_at].into_iter().flatten() {
                if t > now {
                    changes.push(t);
                }
            }
            states.push(KeyState {
                kid: key.kid.clone(),
                mode,
                phase,
                retires_at,
                removed_at,
            });
        }
        if let Some(s) = signer {
            signing.push((mode, ordered[s].kid.clone()));
        }
    }
    KeyPlan {
        keys: states,
        signing,
        next_change: changes.into_iter().min(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, created: i64, not_before: i64) -> ScheduledKey {
        ScheduledKey {
            kid: kid.into(),
            mode: Mode::Test,
            created_at: created,
            not_before,
        }
    }

    fn phases(p: &KeyPlan) -> Vec<(&str, KeyPhase)> {
        p.keys.iter().map(|k| (k.kid.as_str(), k.phase)).collect()
    }

    #[test]
    fn a_rotation_publishes_ahead_signs_later_and_retires_after_the_longest_token() {
        // k1 since 0; k2 created at 1000 to sign from 1600; tokens live ≤ 3600.
        let keys = [key("k1", 0, 0), key("k2", 1000, 1600)];
        use KeyPhase::*;
        type Row<'a> = (i64, &'a str, &'a [(&'a str, KeyPhase)]);
        let table: &[Row] = &[
            (999, "k1", &[("k1", Active), ("k2", Next)]),
            (1599, "k1", &[("k1", Active), ("k2", Next)]),
            (1600, "k2", &[("k1", Retired), ("k2", Active)]),
            (5199, "k2", &[("k1", Retired), ("k2", Active)]),
            (5200, "k2", &[("k1", Removed), ("k2", Active)]),
        ];
        for (now, signer, expected) in table {
            let p = plan(&keys, *now, 3600);
            assert_eq!(p.signing_kid(Mode::Test), Some(*signer), "at {now}");
            assert_eq!(phases(&p), expected.to_vec(), "at {now}");
        }
        assert_eq!(plan(&keys, 1000, 3600).next_change, Some(1600));
        assert_eq!(plan(&keys, 1600, 3600).next_change, Some(5200));
        assert_eq!(plan(&keys, 5200, 3600).next_change, None);
        let published: Vec<_> = plan(&keys, 5200, 3600)
            .published()
            .map(|k| k.kid.clone())
            .collect();
        assert_eq!(published, vec!["k2"]);
    }

    #[test]
    fn modes_are_scheduled_independently_and_an_immediate_key_signs_at_once() {
        let mut live = key("l1", 0, 0);
        live.mode = Mode::Live;
        let keys = [key("k1", 0, 0), key("k2", 50, 50), live];
        let p = plan(&keys, 50, 100);
        assert_eq!(p.signing_kid(Mode::Test), Some("k2"));
        assert_eq!(p.signing_kid(Mode::Live), Some("l1"));
        assert_eq!(
            p.keys.iter().find(|k| k.kid == "k1").unwrap().removed_at,
            Some(150)
        );
    }

    #[test]
    fn before_any_key_is_due_the_earliest_signs() {
        let keys = [key("k1", 0, 100), key("k2", 0, 200)];
        let p = plan(&keys, 10, 60);
        assert_eq!(p.signing_kid(Mode::Test), Some("k1"));
        assert_eq!(
            phases(&p),
            vec![("k1", KeyPhase::Active), ("k2", KeyPhase::Next)]
        );
    }
}
