//! `latchkey verify`: the verdict on one access token or API key, as the
//! machine receiving it would reach it. A token is checked locally against
//! the issuer's published keys with `latchkey-verify`; an API key is checked
//! by the server's verify endpoint. The value checked is never printed.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use latchkey_core::credential::{self, CredentialKind};
use latchkey_core::Secret;
use latchkey_types::api_keys::ValidApiKey;
use latchkey_types::Mode;
use latchkey_verify::{verify_jwt, Expectations, JwkSet, KeySet, VerifyError};
use serde::Deserialize;
use serde_json::json;

use super::token::decode_jwt;
use crate::cli::VerifyArgs;
use crate::client::{check_credential, sensitive_header, Client};
use crate::output::{emit, list, opt_time, Record};

/// The exit status of an invalid token or key. Errors (usage, network, a
/// refused caller) exit with 2, valid with 0.
const INVALID: u8 = 1;

/// What the value to check is, judged from its shape alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `lk_<mode>_key_…`: an API key, for the verify endpoint. The mode is
    /// the one its prefix names (the server checks the rest).
    ApiKey(Mode),
    /// Anything else: an access token, checked as a JWT.
    Jwt,
}

/// Runs `latchkey verify`; `Ok` carries the exit status of the verdict.
pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let value = read_value(&args.value, &mut std::io::stdin().lock())?;
    match classify(value.expose())? {
        Kind::ApiKey(mode) => api_key(&args, &value, mode).await,
        Kind::Jwt => jwt(&args, value.expose()).await,
    }
}

/// The value itself, or stdin for `-`, trimmed. Empty is a usage error.
fn read_value(arg: &str, stdin: &mut dyn std::io::Read) -> anyhow::Result<Secret> {
    let value = if arg == "-" {
        let mut buf = String::new();
        stdin
            .take(64 * 1024)
            .read_to_string(&mut buf)
            .context("reading the token or key from stdin")?;
        buf
    } else {
        arg.to_owned()
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        bail!("nothing to verify: give a token or an API key, or `-` and pipe it in");
    }
    Ok(Secret::new(trimmed.to_owned()))
}

/// Tells an API key from a JWT. A Latchkey credential of another type (an
/// admin key, a client secret) is neither, and a usage error.
fn classify(value: &str) -> anyhow::Result<Kind> {
    for mode in Mode::ALL {
        if value.starts_with(&format!("lk_{}_key_", mode.as_str())) {
            return Ok(Kind::ApiKey(mode));
        }
    }
    if value.starts_with("lk_") {
        let what = match credential::parse(value).map(|i| i.kind) {
            Ok(CredentialKind::Admin) => "an admin key",
            Ok(CredentialKind::ClientSecret) => "a client secret",
            _ => "a Latchkey credential of another type",
        };
        bail!("this is {what}; latchkey verify checks access tokens and API keys");
    }
    Ok(Kind::Jwt)
}

/// `POST /v1/api-keys/verify` with the key in `X-Api-Key` and the caller
/// credential as bearer.
async fn api_key(args: &VerifyArgs, key: &Secret, key_mode: Mode) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.url)?;
    if let Some(expected) = args.mode.map(Mode::from) {
        if expected != key_mode {
            // The prefix names the mode, so no server needs to be asked.
            let body = json!({"valid": false, "code": "wrong_mode"}).to_string();
            return report_key(args, &body);
        }
    }
    if key_mode == Mode::Live && client.base().scheme() != "https" {
        bail!(
            "refusing to send a live API key over plain HTTP to {}; use an https:// URL",
            client.base()
        );
    }
    let caller = caller(args, &client)?;
    let headers = [
        (
            "authorization",
            sensitive_header(&format!("Bearer {}", caller.expose()))?,
        ),
        ("x-api-key", sensitive_header(key.expose())?),
    ];
    let resp = client
        .post_headers(&["v1", "api-keys", "verify"], &headers)
        .await?;
    report_key(args, &resp.body)
}

/// The caller credential: `--caller`/`LATCHKEY_CALLER`, else the admin key.
/// A Latchkey credential must be an admin key or an API key; anything else
/// is taken for an access token. A live one is not sent over plain HTTP.
fn caller(args: &VerifyArgs, client: &Client) -> anyhow::Result<Secret> {
    let present = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let Some(caller) = present(&args.caller)
        .or_else(|| present(&args.admin_key))
        .map(Secret::new)
    else {
        bail!(
            "checking an API key needs a caller credential: set LATCHKEY_CALLER (an admin key, \
             an API key or an access token) or LATCHKEY_ADMIN_KEY"
        );
    };
    if caller.expose().starts_with("lk_") {
        check_credential(
            &caller,
            &[CredentialKind::Admin, CredentialKind::ApiKey],
            "caller credential",
            client.base(),
        )?;
    } else {
        // An access token: its claimed mode is read (not verified) only to
        // keep a live one off plain HTTP.
        let (_, claims) = decode_jwt(caller.expose()).map_err(|_| {
            anyhow!("the caller credential is neither a Latchkey admin key or API key nor an access token")
        })?;
        if claims["mode"] == "live" && client.base().scheme() != "https" {
            bail!(
                "refusing to send a live caller credential over plain HTTP to {}; use an https:// URL",
                client.base()
            );
        }
    }
    Ok(caller)
}

/// The verdict of the verify endpoint, read leniently: a `code` added by a
/// newer server is still shown.
#[derive(Deserialize)]
struct KeyVerdict {
    valid: bool,
    code: Option<String>,
}

/// Prints the verify endpoint's answer (`body`) and returns the exit status.
fn report_key(args: &VerifyArgs, body: &str) -> anyhow::Result<ExitCode> {
    let verdict: KeyVerdict = serde_json::from_str(body).map_err(|e| {
        anyhow!("the server's response is not what this version of latchkey expects ({e})")
    })?;
    if args.json {
        emit(body)?;
    } else {
        emit(&render_key(&verdict, body))?;
    }
    Ok(if verdict.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    })
}

/// `valid` and the key's details, or `invalid: <code>`.
fn render_key(verdict: &KeyVerdict, body: &str) -> String {
    if !verdict.valid {
        return format!(
            "invalid: {}\n",
            verdict.code.as_deref().unwrap_or("(no code)")
        );
    }
    let details = match serde_json::from_str::<ValidApiKey>(body) {
        Ok(v) => key_record(&v),
        // Still valid; the details are in a shape this version does not know.
        Err(_) => "(details: see --json)\n".to_owned(),
    };
    format!("valid: API key\n{details}")
}

/// The details of a valid key.
fn key_record(v: &ValidApiKey) -> String {
    let authorization = v
        .authorization
        .iter()
        .map(|(tenant, roles)| format!("{tenant}: [{}]", roles.roles.join(", ")))
        .collect::<Vec<_>>();
    Record::new()
        .field("keyId", v.key_id.as_str())
        .field("userId", v.user_id.as_str())
        .field("tenantId", v.tenant_id.as_str())
        .field("mode", v.mode.as_str())
        .field("roles", list(&v.roles))
        .field("authorization", list(&authorization))
        .field("expiresAt", opt_time(v.expires_at))
        .field(
            "remaining",
            v.remaining
                .map_or_else(|| "- (unlimited)".to_owned(), |r| r.to_string()),
        )
        .render()
}

/// The parts of the RFC 8414 metadata `verify` needs.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// Checks a JWT against the issuer's published keys.
async fn jwt(args: &VerifyArgs, token: &str) -> anyhow::Result<ExitCode> {
    let mode = args.mode.map_or(Mode::Live, Mode::from);
    // A value that is not even shaped like a JWT is invalid without asking
    // the network anything.
    if let Err(e) = latchkey_verify::jwt::peek_kid(token) {
        return report_jwt(args, token, &Err(e), mode);
    }
    let client = Client::new(&args.url)?;
    // Each mode is its own issuer: test's is `{url}/test`, whose RFC 8414
    // metadata is at the well-known path with `/test` after it.
    let metadata_path: &[&str] = match mode {
        Mode::Live => &[".well-known", "oauth-authorization-server"],
        Mode::Test => &[".well-known", "oauth-authorization-server", "test"],
    };
    let metadata: Metadata = client
        .get(metadata_path, &[])
        .await
        .context("fetching the issuer's metadata")?
        .parse()?;
    let jwks_uri = reqwest::Url::parse(&metadata.jwks_uri)
        .map_err(|e| anyhow!("the metadata's jwks_uri is not a URL: {e}"))?;
    let jwks: JwkSet = client
        .get_absolute(&jwks_uri)
        .await
        .context("fetching the issuer's keys")?
        .parse()?;
    let keys =
        KeySet::from_jwks(&jwks).map_err(|e| anyhow!("the issuer's JWKS is unusable: {e}"))?;
    let mut expect = Expectations::new(args.issuer.clone().unwrap_or(metadata.issuer)).mode(mode);
    if let Some(audience) = &args.audience {
        expect = expect.audience(audience.clone());
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let result = verify_jwt(token, &keys, &expect, now).map(|c| c.into_raw());
    report_jwt(args, token, &result, mode)
}

/// Prints the verdict on a token and returns the exit status.
fn report_jwt(
    args: &VerifyArgs,
    token: &str,
    result: &Result<latchkey_verify::AccessTokenClaims, VerifyError>,
    mode: Mode,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(claims) => {
            if args.json {
                emit(&json!({"valid": true, "claims": claims}).to_string())?;
            } else {
                emit(&format!(
                    "valid: access token\n{}",
                    serde_json::to_string_pretty(claims)?
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let reason = describe(e, mode, args, token);
            if args.json {
                emit(&json!({"valid": false, "code": code(e), "reason": reason}).to_string())?;
            } else {
                emit(&format!("invalid: {reason}"))?;
            }
            Ok(ExitCode::from(INVALID))
        }
    }
}

/// The error, with a hint where the fix is on this side of the check.
fn describe(e: &VerifyError, mode: Mode, args: &VerifyArgs, token: &str) -> String {
    let other = match mode {
        Mode::Live => Mode::Test,
        Mode::Test => Mode::Live,
    };
    match e {
        VerifyError::WrongMode => {
            format!(
                "{e}: expected a {mode} token (pass --mode {other} to accept {other}-mode tokens)"
            )
        }
        // Each mode is its own issuer with its own keys, so a token of the
        // other mode fails by key. Its (unverified) claim says why.
        VerifyError::UnknownKid(_)
            if decode_jwt(token).is_ok_and(|(_, claims)| claims["mode"] == other.as_str()) =>
        {
            format!(
                "{e} among the {mode} issuer's keys at {}: the token says it is a {other}-mode \
                 token, and each mode has its own issuer and keys (pass --mode {other} to \
                 check it as one)",
                args.url
            )
        }
        VerifyError::WrongIssuer if args.issuer.is_some() => {
            format!(
                "{e}: the token was not issued by {}",
                args.issuer.as_deref().unwrap_or_default()
            )
        }
        VerifyError::WrongAudience => format!(
            "{e}: the token is not meant for {}",
            args.audience.as_deref().unwrap_or_default()
        ),
        VerifyError::UnknownKid(_) => {
            format!("{e} among the issuer's keys at {}", args.url)
        }
        _ => e.to_string(),
    }
}

/// A stable snake_case code for `--json`.
fn code(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::Malformed(_) => "malformed",
        VerifyError::TooLarge => "too_large",
        VerifyError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
        VerifyError::CriticalHeader => "critical_header",
        VerifyError::UnknownKid(_) => "unknown_kid",
        VerifyError::AlgorithmMismatch { .. } => "algorithm_mismatch",
        VerifyError::BadSignature => "bad_signature",
        VerifyError::InvalidClaims(_) => "invalid_claims",
        VerifyError::WrongType => "wrong_type",
        VerifyError::WrongIssuer => "wrong_issuer",
        VerifyError::WrongAudience => "wrong_audience",
        VerifyError::WrongMode => "wrong_mode",
        VerifyError::Expired => "expired",
        VerifyError::NotYetValid => "not_yet_valid",
        VerifyError::IssuedInFuture => "issued_in_future",
        VerifyError::KeysUnavailable(_) => "keys_unavailable",
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use latchkey_core::credential::generate;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(flags: &[&str]) -> VerifyArgs {
        let argv = ["latchkey", "verify", "x"]
            .into_iter()
            .chain(flags.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Verify(a) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_dash_reads_the_value_from_stdin_and_trims_it() {
        let mut stdin: &[u8] = b"  eyJ.a.b\n";
        assert_eq!(read_value("-", &mut stdin).unwrap().expose(), "eyJ.a.b");
        let mut unused: &[u8] = b"ignored";
        assert_eq!(read_value("tok", &mut unused).unwrap().expose(), "tok");
    }

    #[test]
    fn an_empty_value_is_a_usage_error() {
        let mut empty: &[u8] = b"\n";
        assert!(read_value("-", &mut empty).is_err());
        assert!(read_value("  ", &mut empty).is_err());
    }

    #[test]
    fn api_keys_are_told_from_tokens_by_their_prefix() {
        let key = generate(Mode::Live, CredentialKind::ApiKey);
        assert_eq!(classify(key.expose()).unwrap(), Kind::ApiKey(Mode::Live));
        // A mistyped key is still a key: the server says `malformed`.
        assert_eq!(
            classify("lk_test_key_short").unwrap(),
            Kind::ApiKey(Mode::Test)
        );
        assert_eq!(classify("eyJhbGciOi.e30.sig").unwrap(), Kind::Jwt);
    }

    #[test]
    fn other_latchkey_credentials_are_refused_without_echoing_them() {
        for kind in [CredentialKind::Admin, CredentialKind::ClientSecret] {
            let cred = generate(Mode::Test, kind);
            let err = classify(cred.expose()).unwrap_err().to_string();
            assert!(err.contains("latchkey verify checks"), "{err}");
            assert!(!err.contains(cred.expose()), "{err}");
        }
    }

    #[test]
    fn a_valid_key_shows_its_details_and_an_invalid_one_its_code() {
        let body = r#"{"valid":true,"keyId":"key_1","userId":"usr_1","tenantId":"eu","mode":"test",
            "roles":["operator"],"authorization":{"eu":{"roles":["operator"]}},
            "expiresAt":null,"remaining":999}"#;
        let verdict: KeyVerdict = serde_json::from_str(body).unwrap();
        let text = render_key(&verdict, body);
        assert!(text.starts_with("valid: API key\nkeyId:"), "{text}");
        assert!(text.contains("\nauthorization: eu: [operator]\n"), "{text}");
        assert!(text.contains("\nremaining:     999\n"), "{text}");

        let body = r#"{"valid":false,"code":"some_future_code"}"#;
        let verdict: KeyVerdict = serde_json::from_str(body).unwrap();
        assert_eq!(render_key(&verdict, body), "invalid: some_future_code\n");
    }

    #[test]
    fn a_wrong_mode_says_which_flag_accepts_the_other_mode() {
        let text = describe(&VerifyError::WrongMode, Mode::Live, &args(&[]), "x");
        assert!(text.contains("expected a live token"), "{text}");
        assert!(text.contains("--mode test"), "{text}");
        let text = describe(
            &VerifyError::WrongAudience,
            Mode::Live,
            &args(&["--audience", "https://api.example"]),
            "x",
        );
        assert!(text.contains("https://api.example"), "{text}");
    }

    #[test]
    fn an_unknown_key_of_a_token_claiming_the_other_mode_says_so() {
        use base64::Engine as _;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = |mode: &str| {
            format!(
                "{}.{}.c2ln",
                b64(json!({"alg": "EdDSA", "kid": "k"})),
                b64(json!({"mode": mode}))
            )
        };
        let unknown = VerifyError::UnknownKid("k".into());
        let text = describe(&unknown, Mode::Live, &args(&[]), &token("test"));
        assert!(text.contains("says it is a test-mode token"), "{text}");
        assert!(text.contains("--mode test"), "{text}");
        let text = describe(&unknown, Mode::Test, &args(&[]), &token("live"));
        assert!(text.contains("--mode live"), "{text}");
        // A token of this very mode with an unknown key gets no such hint.
        let text = describe(&unknown, Mode::Live, &args(&[]), &token("live"));
        assert!(!text.contains("--mode"), "{text}");
    }

    #[test]
    fn json_codes_are_snake_case() {
        assert_eq!(code(&VerifyError::BadSignature), "bad_signature");
        assert_eq!(code(&VerifyError::UnknownKid("k".into())), "unknown_kid");
        assert_eq!(code(&VerifyError::Malformed("x")), "malformed");
    }

    #[test]
    fn the_caller_is_the_admin_key_unless_one_is_given() {
        let client = Client::new("http://127.0.0.1:8080").unwrap();
        let admin = generate(Mode::Test, CredentialKind::Admin);
        let key = generate(Mode::Test, CredentialKind::ApiKey);
        let a = args(&["--admin-key", admin.expose()]);
        assert_eq!(caller(&a, &client).unwrap().expose(), admin.expose());
        let a = args(&["--admin-key", admin.expose(), "--caller", key.expose()]);
        assert_eq!(caller(&a, &client).unwrap().expose(), key.expose());
        let err = caller(&args(&[]), &client).unwrap_err().to_string();
        assert!(err.contains("LATCHKEY_CALLER"), "{err}");
    }

    #[test]
    fn a_live_or_unusable_caller_is_refused_over_plain_http() {
        let client = Client::new("http://127.0.0.1:8080").unwrap();
        let live = generate(Mode::Live, CredentialKind::Admin);
        let err = caller(&args(&["--caller", live.expose()]), &client)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("https://") && !err.contains(live.expose()),
            "{err}"
        );
        let secret = generate(Mode::Test, CredentialKind::ClientSecret);
        let err = caller(&args(&["--caller", secret.expose()]), &client)
            .unwrap_err()
            .to_string();
        assert!(!err.contains(secret.expose()), "{err}");
        assert!(caller(&args(&["--caller", "hunter2"]), &client).is_err());
    }
}
