//! The token endpoint's form (`latchkey_core::oauth_form`): any header and
//! body are refused or read into a request that agrees with the raw input,
//! encodes back to itself, carries at most one client authentication and
//! shows no secret in `Debug`.
//!
//! Input, raw: when it holds a newline, what comes before the first one is
//! the `Authorization` header value and the rest is the body; otherwise it
//! is all body (no header). Raw input reaches the decoders (base64,
//! percent-encoding, UTF-8).
//!
//! Input, structured (first byte 0): the next byte picks a header from
//! [`HEADERS`] and each byte after it (up to [`MAX_STRUCTURED_PAIRS`]) one
//! parameter, a name from [`NAMES`] and a value from [`VALUES`]. Structured input reaches the combinations
//! of methods, grants and repeats that raw bytes rarely spell out.
#![no_main]

use latchkey_core::oauth_form::{
    basic_credentials, basic_header, ClientAuth, FormError, Grant, Params, TokenRequestForm,
    CLIENT_ASSERTION_TYPE, MAX_BASIC_CREDENTIALS_LEN, TOKEN_FORM,
};
use latchkey_core::Secret;
use libfuzzer_sys::fuzz_target;

/// Structured input's headers: none, Basic (plain, form-encoded, another
/// client, broken), another scheme, no scheme.
const HEADERS: [Option<&str>; 8] = [
    None,
    Some("Basic dXNyXzE6cHc="),         // usr_1:pw
    Some("basic dXNyJTNBMTpwJTJCdyt4"), // usr%3A1:p%2Bw+x
    Some("Basic dXNyXzI6cHc="),         // usr_2:pw
    Some("Basic dXNyXzE6JUZG"),         // usr_1:%FF (not UTF-8)
    Some("Basic !!!"),
    Some("Bearer lk_test_key_x"),
    Some("Basic"),
];

/// Structured input's parameter names: the endpoint's, and two others.
const NAMES: [&str; 12] = [
    "grant_type",
    "assertion",
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
    "tenant_id",
    "scope",
    "audience",
    "resource",
    "token",
    "unknown",
];

/// Structured input's values.
const VALUES: [&str; 16] = [
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "usr_1",
    "usr_2",
    "usr:1",
    "pw",
    "p+w x",
    "a.b.c",
    "",
    "ten_1",
    "a:read b:write",
    "https://r.example/v1",
    "%FF",
    "é ☃",
    "password",
];

/// Structured input reads at most this many parameters.
const MAX_STRUCTURED_PAIRS: usize = 24;

/// The header and body an input stands for.
fn request(data: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
    if let Some((0, program)) = data.split_first() {
        let Some((choice, pairs)) = program.split_first() else {
            return (None, Vec::new());
        };
        let header = HEADERS[usize::from(*choice) % HEADERS.len()];
        let mut body = form_urlencoded::Serializer::new(String::new());
        // A few parameters make every combination; more only slow it down.
        for b in pairs.iter().take(MAX_STRUCTURED_PAIRS) {
            let b = usize::from(*b);
            body.append_pair(
                NAMES[b % NAMES.len()],
                VALUES[(b / NAMES.len()) % VALUES.len()],
            );
        }
        return (
            header.map(|h| h.as_bytes().to_vec()),
            body.finish().into_bytes(),
        );
    }
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => (Some(data[..at].to_vec()), data[at + 1..].to_vec()),
        None => (None, data.to_vec()),
    }
}

/// The body's pairs, read independently of `Params`.
struct Oracle(Vec<(String, String)>);

impl Oracle {
    fn new(body: &[u8]) -> Self {
        Oracle(form_urlencoded::parse(body).into_owned().collect())
    }

    fn values(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn count(&self, name: &str) -> usize {
        self.0.iter().filter(|(k, _)| k == name).count()
    }

    fn one(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Whether the header names the Basic scheme (whether or not it decodes).
fn says_basic(header: Option<&[u8]>) -> bool {
    header.is_some_and(|h| {
        let text = String::from_utf8_lossy(h);
        text.split_once(' ')
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
    })
}

/// The length of the base64 part of a Basic header value.
fn basic_len(value: &str) -> usize {
    value.len() - "Basic ".len()
}

fuzz_target!(|data: &[u8]| {
    let (header, body) = request(data);
    let (header, body) = (header.as_deref(), body.as_slice());
    let params = Params::parse(body);
    let oracle = Oracle::new(body);
    let parsed = TokenRequestForm::parse(header, &params);

    // RFC 6749 §3.2: a parameter of the endpoint that repeats (audience and
    // resource aside) is always an error, whatever else is wrong.
    let repeated = TOKEN_FORM
        .iter()
        .filter(|p| !p.repeats)
        .map(|p| p.name)
        .find(|name| oracle.count(name) > 1);
    if let Some(name) = repeated {
        assert!(parsed.is_err(), "{name} repeated, yet accepted");
    }
    // And what says a parameter repeats is right.
    if let Err(FormError::InvalidRequest(detail)) = &parsed {
        if let Some(name) = detail
            .strip_prefix("the parameter ")
            .and_then(|d| d.strip_suffix(" must not repeat"))
        {
            assert!(oracle.count(name) > 1, "{name} does not repeat");
        }
    }
    // The Basic challenge only answers a header.
    if parsed == Err(FormError::InvalidClient { basic: true }) {
        assert!(header.is_some());
    }

    // Basic decoding round-trips through encoding.
    if let Ok(Some(basic)) = basic_credentials(header) {
        assert!(says_basic(header));
        let again = basic_header(&basic.client_id, basic.secret.expose());
        let decoded = basic_credentials(Some(again.as_bytes()));
        if basic_len(&again) <= MAX_BASIC_CREDENTIALS_LEN {
            assert_eq!(decoded, Ok(Some(basic)));
        } else {
            assert_eq!(decoded, Err(FormError::InvalidClient { basic: true }));
        }
    }

    // The Debug of the parameters depends on no value.
    let blanked = Params::from_pairs(
        params
            .pairs()
            .iter()
            .map(|(k, _)| (k.clone(), String::new()))
            .collect(),
    );
    assert_eq!(format!("{params:?}"), format!("{blanked:?}"));

    let Ok(form) = parsed else {
        return;
    };

    // What was read is what the body says.
    assert_eq!(form.tenant_id, oracle.one("tenant_id"));
    assert_eq!(form.scope, oracle.one("scope"));
    assert_eq!(form.audiences, oracle.values("audience"));
    assert_eq!(form.resources, oracle.values("resource"));
    match &form.grant {
        Grant::ClientCredentials => {
            assert_eq!(
                oracle.one("grant_type").as_deref(),
                Some("client_credentials")
            );
            assert_ne!(form.client_auth, ClientAuth::None);
        }
        Grant::JwtBearer { assertion } => {
            assert_eq!(oracle.one("assertion").as_deref(), Some(assertion.expose()));
        }
        Grant::RefreshToken { refresh_token } => {
            assert_eq!(oracle.one("grant_type").as_deref(), Some("refresh_token"));
            assert_eq!(
                oracle.one("refresh_token").as_deref(),
                Some(refresh_token.expose())
            );
        }
        Grant::TokenExchange {
            subject_token,
            subject_token_type,
        } => {
            assert_eq!(
                oracle.one("grant_type").as_deref(),
                Some(latchkey_core::oauth_form::TOKEN_EXCHANGE_GRANT)
            );
            assert_eq!(
                oracle.one("subject_token").as_deref(),
                Some(subject_token.expose())
            );
            assert_eq!(
                oracle.one("subject_token_type").as_ref(),
                Some(subject_token_type)
            );
            assert!(oracle.one("actor_token").is_none());
        }
    }

    // At most one client authentication method was used, and the one
    // reported is the one the request carries.
    let basic = says_basic(header);
    let secret = oracle.one("client_secret");
    let assertion_type = oracle.one("client_assertion_type");
    let client_assertion = oracle.one("client_assertion");
    let methods = [
        basic,
        secret.is_some(),
        assertion_type.is_some() || client_assertion.is_some(),
    ];
    assert!(
        methods.iter().filter(|&&m| m).count() <= 1,
        "several methods accepted"
    );
    let body_id = oracle.one("client_id");
    match &form.client_auth {
        ClientAuth::None => {
            assert!(matches!(
                form.grant,
                Grant::JwtBearer { .. } | Grant::RefreshToken { .. } | Grant::TokenExchange { .. }
            ));
            assert!(header.is_none() && secret.is_none() && client_assertion.is_none());
        }
        ClientAuth::Basic { client_id, .. } => {
            assert!(basic);
            let decoded = basic_credentials(header).ok().flatten();
            assert_eq!(decoded.map(|b| b.client_id).as_ref(), Some(client_id));
            assert!(body_id.is_none() || body_id.as_ref() == Some(client_id));
        }
        ClientAuth::Post {
            client_id,
            secret: s,
        } => {
            assert_eq!(body_id.as_ref(), Some(client_id));
            assert_eq!(secret.as_deref(), Some(s.expose()));
        }
        ClientAuth::Assertion {
            client_id,
            assertion,
        } => {
            assert_eq!(assertion_type.as_deref(), Some(CLIENT_ASSERTION_TYPE));
            assert_eq!(client_assertion.as_deref(), Some(assertion.expose()));
            assert_eq!(client_id, &body_id);
        }
    }

    // Debug does not depend on any secret: blanking them changes nothing.
    let blank = Secret::new(String::new());
    let mut blanked = form.clone();
    match &mut blanked.client_auth {
        ClientAuth::Basic { secret, .. } | ClientAuth::Post { secret, .. } => {
            *secret = blank.clone()
        }
        ClientAuth::Assertion { assertion, .. } => *assertion = blank.clone(),
        ClientAuth::None => {}
    }
    if let Grant::JwtBearer { assertion } = &mut blanked.grant {
        *assertion = blank;
    }
    assert_eq!(format!("{form:?}"), format!("{blanked:?}"));

    // Encoding the request and reading it again gives the same request.
    let (header_again, body_again) = form.encode();
    let again = TokenRequestForm::parse(
        header_again.as_deref().map(str::as_bytes),
        &Params::parse(body_again.as_bytes()),
    );
    match &header_again {
        Some(h) if basic_len(h) > MAX_BASIC_CREDENTIALS_LEN => {
            assert_eq!(again, Err(FormError::InvalidClient { basic: true }));
        }
        _ => assert_eq!(again, Ok(form)),
    }
});
