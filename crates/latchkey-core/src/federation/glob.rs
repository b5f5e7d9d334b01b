//! Glob patterns of workload rules: `*` matches any run of characters
//! (slashes and colons included: `repo:acme/*` matches every branch of
//! every repository of `acme`), `?` exactly one character, and `\` makes
//! the next character literal. Everything else matches itself, case
//! sensitively. Matching is linear in practice (one backtrack point, the
//! last `*`), so a hostile claim cannot make it slow.

/// Whether `value` matches `pattern` as a whole.
pub fn matches(pattern: &str, value: &str) -> bool {
    let pattern = tokens(pattern);
    let value: Vec<char> = value.chars().collect();
    let (mut p, mut v) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, value
    // index it has absorbed up to).
    let mut resume: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Token::Star) => {
                resume = Some((p + 1, v));
                p += 1;
            }
            Some(Token::Any) => {
                p += 1;
                v += 1;
            }
            Some(Token::Char(c)) if *c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match resume {
                // Let the last star absorb one more character.
                Some((after, absorbed)) => {
                    p = after;
                    v = absorbed + 1;
                    resume = Some((after, absorbed + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|t| *t == Token::Star)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Char(char),
}

fn tokens(pattern: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Token::Star,
            '?' => Token::Any,
            // A trailing backslash stands for itself.
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_as_documented() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("", "", true),
            ("", "x", false),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "ABC", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            (
                "repo:acme/*:ref:refs/heads/main",
                "repo:acme/api:ref:refs/heads/main",
                true,
            ),
            (
                "repo:acme/*:ref:refs/heads/main",
                "repo:acme/api:ref:refs/heads/dev",
                false,
            ),
            ("repo:acme/*", "repo:acme-evil/api", false),
            ("repo:acme/*", "repo:acme/", true),
            (
                "system:serviceaccount:prod:*",
                "system:serviceaccount:prod:billing",
                true,
            ),
            (
                "system:serviceaccount:prod:*",
                "system:serviceaccount:production:x",
                false,
            ),
            ("*-worker", "eu-worker", true),
            ("*-worker", "eu-worker-2", false),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "a-c-b", false),
            ("**", "x", true),
            (r"a\*b", "a*b", true),
            (r"a\*b", "axb", false),
            (r"a\?", "a?", true),
            (r"a\?", "ab", false),
            ("a\\", "a\\", true),
        ];
        for (pattern, value, expected) in table {
            assert_eq!(
                matches(pattern, value),
                *expected,
                "{pattern:?} vs {value:?}"
            );
        }
    }

    #[test]
    fn a_hostile_pattern_and_value_stay_fast() {
        let value = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(200));
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &value));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
