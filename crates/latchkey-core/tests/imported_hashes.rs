//! Imported password hashes, made by other implementations (Python's
//! `bcrypt`, passlib, Django's hashers, argon2-cffi, hashlib, `openssl
//! passwd`): each verifies with its password, refuses a wrong one, and asks
//! for a rehash. `fixtures/imported_hashes.json` is the generator's output,
//! committed; when Python has the libraries (CI installs them), the
//! generator runs again and its fresh hashes are checked too.

use std::path::Path;
use std::process::Command;

use latchkey_core::login::password::{self, imported, Verdict};
use latchkey_types::migration::CustomPasswordHash;
use serde_json::Value;

fn stored_form(hash: &Value) -> String {
    match hash {
        Value::String(s) => imported::accept(s).unwrap_or_else(|e| panic!("{s}: {e}")),
        other => {
            let custom: CustomPasswordHash = serde_json::from_value(other.clone()).unwrap();
            imported::accept_custom(&custom).unwrap_or_else(|e| panic!("{other}: {e}"))
        }
    }
}

fn check_all(cases: &[Value]) -> usize {
    let mut sources = std::collections::BTreeSet::new();
    for case in cases {
        let source = case["source"].as_str().unwrap();
        let pw = case["password"].as_str().unwrap();
        let stored = stored_form(&case["hash"]);
        assert_eq!(
            password::check(&stored, pw),
            Verdict::Match { rehash: true },
            "{source}: {stored}"
        );
        let wrong = format!("{pw}!");
        assert_eq!(
            password::check(&stored, &wrong),
            Verdict::Mismatch,
            "{source}: a wrong password"
        );
        let mut chars = pw.chars();
        chars.next_back();
        assert_eq!(
            password::check(&stored, chars.as_str()),
            Verdict::Mismatch,
            "{source}: one character short"
        );
        sources.insert(source);
    }
    sources.len()
}

#[test]
fn committed_hashes_of_other_implementations_verify() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imported_hashes.json");
    let cases: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert!(cases.len() >= 60, "{}", cases.len());
    assert!(check_all(&cases) >= 20, "every source at least once");
}

#[test]
fn fresh_hashes_from_the_python_libraries_verify() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_imported_hashes.py");
    let out = Command::new("python3").arg(&script).output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) if std::env::var_os("CI").is_some() => panic!(
            "CI has the Python libraries: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        _ => {
            eprintln!("skipped: python3 with bcrypt, passlib, django and argon2-cffi is not here");
            return;
        }
    };
    let cases: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(check_all(&cases) >= 20);
}

#[test]
fn latchkeys_own_hashes_need_no_rehash() {
    let stored = password::hash("plum-kettle-orbit-9");
    assert!(password::is_current(&stored));
    assert_eq!(
        password::check(&stored, "plum-kettle-orbit-9"),
        Verdict::Match { rehash: false }
    );
    assert_eq!(
        password::check(&stored, "plum-kettle-orbit"),
        Verdict::Mismatch
    );
    assert!(
        imported::accept(&stored).is_ok(),
        "an Argon2id PHC string imports too"
    );
}

#[test]
fn bad_and_costly_hashes_are_refused_at_import() {
    use imported::HashRejection::*;
    type Expect = fn(&imported::HashRejection) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("plaintext", |e| matches!(e, UnknownFormat(_))),
        ("$1$abc$def", |e| matches!(e, UnknownFormat(_))),
        ("$2b$15$", |e| matches!(e, Malformed { .. })),
        (
            "$2b$15$abcdefghijklmnopqrstuv1234567890123456789012345678901",
            |e| matches!(e, TooCostly(_)),
        ),
        (
            "$2b$1x$abcdefghijklmnopqrstuv1234567890123456789012345678901",
            |e| matches!(e, Malformed { .. }),
        ),
        (
            "$argon2id$v=19$m=4194304,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            |e| matches!(e, TooCostly(_)),
        ),
        ("$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ", |e| {
            matches!(e, Malformed { .. })
        }),
        (
            "$scrypt$ln=22,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            |e| matches!(e, TooCostly(_)),
        ),
        (
            "$pbkdf2-sha256$i=90000000,l=32$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            |e| matches!(e, TooCostly(_)),
        ),
        ("$pbkdf2-sha256$90000000$c2FsdA$aGFzaA", |e| {
            matches!(e, TooCostly(_))
        }),
        ("pbkdf2_sha256$870000$salt$notbase64!", |e| {
            matches!(e, Malformed { .. })
        }),
        ("pbkdf2_sha256$0$salt$aGFzaA==", |e| {
            matches!(e, TooCostly(_))
        }),
        ("$6$rounds=99999999$salt$x", |e| {
            matches!(e, Malformed { .. } | TooCostly(_))
        }),
        ("{CRYPT}$1$x", |e| {
            matches!(e, UnknownFormat(_) | Malformed { .. })
        }),
        ("{SSHA}not base64!", |e| matches!(e, Malformed { .. })),
        ("{NTLM}abc", |e| matches!(e, UnknownFormat(_))),
        (r#"{"algorithm":"md4","hash":{"value":"00"}}"#, |e| {
            matches!(e, UnknownFormat(_))
        }),
        (r#"{"algorithm":"sha256","hash":{"value":"zz"}}"#, |e| {
            matches!(e, Malformed { .. })
        }),
        (r#"{"algorithm":"sha256","hash":{"value":"00"}}"#, |e| {
            matches!(e, Malformed { .. })
        }),
        (r#"{"algorithm":"hmac","hash":{"value":"00"}}"#, |e| {
            matches!(e, Malformed { .. })
        }),
        (r#"{"algorithm":"bcrypt","hash":{"value":"$6$x$y"}}"#, |e| {
            matches!(e, Malformed { .. })
        }),
        (
            r#"{"algorithm":"sha1","hash":{"value":"00"},"extra":1}"#,
            |e| matches!(e, Malformed { .. }),
        ),
    ];
    for (hash, expected) in cases {
        let got = imported::accept(hash).expect_err(hash);
        assert!(expected(&got), "{hash}: {got:?}");
        assert_eq!(
            password::check(hash, "anything"),
            Verdict::Mismatch,
            "{hash}"
        );
    }
    assert!(imported::accept(&"$".repeat(2000)).is_err());
}

#[test]
fn a_password_longer_than_any_latchkey_accepts_never_matches() {
    use sha2::Digest;
    let long = "a".repeat(password::MAX_CHARS + 1);
    let custom = CustomPasswordHash {
        algorithm: "sha256".into(),
        hash: latchkey_types::migration::CustomHashValue {
            value: data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(long.as_bytes())),
            encoding: None,
            digest: None,
            key: None,
        },
        salt: None,
        password: None,
    };
    let stored = imported::accept_custom(&custom).unwrap();
    assert!(imported::verify(&stored, &long), "the hash itself is right");
    assert_eq!(password::check(&stored, &long), Verdict::Mismatch);
}
