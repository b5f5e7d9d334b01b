//! TOTP (RFC 6238 over RFC 4226's HOTP): SHA-1, 6 digits, 30-second steps,
//! one step of drift either way, and each code accepted once per user: a
//! check returns the step it matched, the store keeps the last one used,
//! and a later check only accepts steps after it.

use aws_lc_rs::{constant_time, hmac};
use data_encoding::BASE32_NOPAD;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps of drift accepted either way.
pub const DRIFT_STEPS: i64 = 1;
/// Secret length in bytes (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_LEN: usize = 20;

/// A new random TOTP secret.
pub fn generate_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut secret = vec![0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret as authenticator apps take it: base32 without padding.
pub fn encode_secret(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// Reads a base32 secret as authenticator apps show it (case and padding
/// forgiven, spaces ignored).
pub fn decode_secret(text: &str) -> Option<Vec<u8>> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .flat_map(char::to_uppercase)
        .collect();
    BASE32_NOPAD.decode(clean.as_bytes()).ok()
}

/// The step a Unix time falls in.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The HOTP value for a counter, as `DIGITS` decimal digits.
pub fn code_at(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!(
        "{:0width$}",
        binary % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// A code as typed: six digits, spaces allowed between them (apps show
/// `123 456`). Anything else is `None`.
pub fn normalize(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// Checks `code` at `unix_seconds`: the step it matches within the drift
/// window, if that step is after `last_used` (a code is accepted once).
/// Every step of the window is compared, in constant time, whatever
/// matches, so the time taken says nothing about which one did.
pub fn check(secret: &[u8], code: &str, unix_seconds: i64, last_used: Option<i64>) -> Option<i64> {
    let code = normalize(code)?;
    let now = step_at(unix_seconds);
    let mut matched = None;
    for step in now - DRIFT_STEPS..=now + DRIFT_STEPS {
        let expected = code_at(secret, step);
        if constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes()).is_ok()
            && last_used.is_none_or(|used| step > used)
            && matched.is_none()
        {
            matched = Some(step);
        }
    }
    matched
}

/// The `otpauth://` URI authenticator apps read (Google Authenticator's
/// key-uri format): label `issuer:account`, secret, issuer, and the
/// parameters spelled out.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let issuer_enc = utf8_percent_encode(issuer, NON_ALPHANUMERIC).to_string();
    let account_enc = utf8_percent_encode(account, NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        encode_secret(secret)
    )
}

/// The URI as a QR code in SVG, for enrolment pages.
pub fn qr_svg(uri: &str) -> Result<String, qrcode::types::QrError> {
    let code = qrcode::QrCode::new(uri.as_bytes())?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn matches_rfc_6238_test_vectors() {
        // (time, 8-digit value from the RFC); we use the last 6 digits.
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, value) in vectors {
            assert_eq!(code_at(RFC_SECRET, step_at(time)), value[2..], "t={time}");
        }
    }

    #[test]
    fn accepts_one_step_of_drift_and_each_code_once() {
        let t = 1_234_567_890;
        let now = step_at(t);
        let code = code_at(RFC_SECRET, now);
        assert_eq!(check(RFC_SECRET, &code, t, None), Some(now));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(check(RFC_SECRET, &spaced, t, None), Some(now));
        // Once used, the same code (and any earlier step) is refused.
        assert_eq!(check(RFC_SECRET, &code, t, Some(now)), None);
        assert_eq!(
            check(RFC_SECRET, &code_at(RFC_SECRET, now - 1), t, Some(now)),
            None
        );
        // The next step's code is still good after this one.
        assert_eq!(
            check(RFC_SECRET, &code_at(RFC_SECRET, now + 1), t, Some(now)),
            Some(now + 1)
        );
        // One step either way, not two.
        assert_eq!(
            check(RFC_SECRET, &code_at(RFC_SECRET, now - 1), t, None),
            Some(now - 1)
        );
        assert_eq!(
            check(RFC_SECRET, &code_at(RFC_SECRET, now + 2), t, None),
            None
        );
        assert_eq!(
            check(RFC_SECRET, &code_at(RFC_SECRET, now - 2), t, None),
            None
        );
        // Not six digits: refused before any comparison.
        for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            assert_eq!(check(RFC_SECRET, bad, t, None), None, "{bad}");
        }
    }

    #[test]
    fn secrets_uris_and_qr_codes() {
        let a = generate_secret();
        assert_eq!(a.len(), SECRET_LEN);
        assert_ne!(a, generate_secret());
        assert_eq!(
            encode_secret(RFC_SECRET),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = otpauth_uri("Latchkey test", "dev@example.com", RFC_SECRET);
        assert_eq!(
            uri,
            "otpauth://totp/Latchkey%20test:dev%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Latchkey%20test&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{}",
            &svg[..80]
        );
    }
}
