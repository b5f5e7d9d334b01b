//! One-time codes and the messages that carry them: a 6-digit code (or a
//! magic link's token) is sent once, stored only as a digest, and checked in
//! constant time; the SMS webhook's request is signed so the receiver can
//! tell it came from this server.

use aws_lc_rs::{constant_time, hmac};
use rand::Rng;

use crate::credential::CredentialDigest;

/// A new 6-digit code, uniform over 000000–999999.
pub fn new_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

/// The digest a login's code is stored as: the code bound to its login,
/// so one login's code is nothing in another.
pub fn code_digest(login_id: &str, code: &str) -> String {
    CredentialDigest::of(&format!("{login_id}:{code}")).to_hex()
}

/// Whether `presented` (as typed: spaces allowed between digits) is the
/// code whose digest is `stored`, compared in constant time.
pub fn code_matches(login_id: &str, presented: &str, stored: &str) -> bool {
    let digits: String = presented.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    constant_time::verify_slices_are_equal(
        code_digest(login_id, &digits).as_bytes(),
        stored.as_bytes(),
    )
    .is_ok()
}

/// Whether a login's session may go to this poll: a login that an SSO
/// return completed stores the digest of the code its browser was handed
/// (`stored`), and only a poll presenting that code gets the session, so
/// a login someone else started and sent a victim's browser through gives
/// its starter nothing. Other logins need no code.
pub fn browser_code_accepted(
    login_id: &str,
    stored: Option<&str>,
    presented: Option<&str>,
) -> bool {
    match (stored, presented) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(stored), Some(code)) => {
            code.len() <= 128
                && constant_time::verify_slices_are_equal(
                    code_digest(login_id, code).as_bytes(),
                    stored.as_bytes(),
                )
                .is_ok()
        }
    }
}

/// The `Latchkey-Signature` header of an SMS webhook request:
/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the
/// secret>`. The receiver recomputes it and refuses old timestamps.
pub fn webhook_signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(unix_seconds.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix_seconds},v1={hex}")
}

/// A message to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject (email only).
    pub subject: Option<String>,
    /// The text.
    pub text: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text holds a code or a link.
        f.debug_struct("Message")
            .field("subject", &self.subject)
            .field("text", &"[redacted]")
            .finish()
    }
}

/// The email that carries a login code.
pub fn email_code_message(code: &str) -> Message {
    Message {
        subject: Some("Your sign-in code".into()),
        text: format!(
            "Your sign-in code is {code}.\n\nIt works once, for 10 minutes. If you did not try to sign in, ignore this message.\n"
        ),
    }
}

/// The SMS that carries a login code.
pub fn sms_code_message(code: &str) -> Message {
    Message {
        subject: None,
        text: format!("Your sign-in code is {code}. It works once, for 10 minutes."),
    }
}

/// The email that carries a magic link.
pub fn magic_link_message(url: &str) -> Message {
    Message {
        subject: Some("Your sign-in link".into()),
        text: format!(
            "Open this link to sign in:\n\n{url}\n\nIt works once, for 10 minutes, and asks you to confirm before it signs you in. If you did not try to sign in, ignore this message.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_completed_through_sso_needs_its_browser_s_code() {
        let stored = code_digest("lgn_1", "browser-code");
        let table = [
            (None, None, true),
            (None, Some("anything"), true),
            (Some(stored.as_str()), None, false),
            (Some(stored.as_str()), Some("browser-code"), true),
            (Some(stored.as_str()), Some("browser-codf"), false),
            (Some(stored.as_str()), Some(""), false),
        ];
        for (stored, presented, want) in table {
            assert_eq!(
                browser_code_accepted("lgn_1", stored, presented),
                want,
                "{stored:?} {presented:?}"
            );
        }
        // Bound to its login: another login's code is nothing here.
        let other = code_digest("lgn_2", "browser-code");
        assert!(!browser_code_accepted(
            "lgn_1",
            Some(&other),
            Some("browser-code")
        ));
    }

    #[test]
    fn codes_are_six_digits_bound_to_their_login_and_checked_as_typed() {
        let code = new_code();
        assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
        let stored = code_digest("lgn_a", &code);
        assert!(code_matches("lgn_a", &code, &stored));
        assert!(code_matches(
            "lgn_a",
            &format!(" {} {} ", &code[..3], &code[3..]),
            &stored
        ));
        assert!(
            !code_matches("lgn_b", &code, &stored),
            "another login's code"
        );
        for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            assert!(
                !code_matches("lgn_a", bad, &code_digest("lgn_a", bad)),
                "{bad}"
            );
        }
        let many: std::collections::HashSet<String> = (0..200).map(|_| new_code()).collect();
        assert!(many.len() > 190, "codes repeat too often");
    }

    #[test]
    fn the_webhook_signature_is_an_hmac_of_time_and_body() {
        // Computed independently: printf '1700000000.{"to":"+1","text":"x"}' | openssl dgst -sha256 -hmac whsec
        let sig = webhook_signature("whsec", 1_700_000_000, br#"{"to":"+1","text":"x"}"#);
        assert_eq!(
            sig,
            "t=1700000000,v1=bd9844755147625d6137b32029f0ee42db53c36f439367656573e0df000ec3a8"
        );
    }

    #[test]
    fn messages_carry_what_they_send_and_debug_hides_it() {
        let m = email_code_message("123456");
        assert!(m.text.contains("123456") && !m.subject.as_deref().unwrap().contains("123456"));
        assert!(!format!("{m:?}").contains("is 123456"));
        assert!(magic_link_message("https://x/auth/magic?token=t")
            .text
            .contains("token=t"));
        assert!(sms_code_message("654321").text.contains("654321"));
    }
}
