//! The OAuth endpoints' forms, without I/O: the urlencoded body, the RFC 6749
//! §3.2 rule that no parameter repeats (except `audience` and `resource`),
//! `Authorization: Basic` (RFC 6749 §2.3.1), the choice of one client
//! authentication method, and the token endpoint's grant.
//!
//! What is parsed here is only what the request *says*; whether a secret or
//! an assertion is right is the server's business. Secrets read from a
//! request are [`Secret`]s, so no `Debug` of anything here shows one.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::Secret;

/// `grant_type` of the client-credentials grant (RFC 6749 §4.4).
pub const CLIENT_CREDENTIALS_GRANT: &str = "client_credentials";
/// `grant_type` of the JWT-bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `grant_type` of the refresh-token grant (RFC 6749 §6).
pub const REFRESH_TOKEN_GRANT: &str = "refresh_token";
/// `grant_type` of the token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of a JWT (RFC 8693 §3): a workload's token.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The token type of an OpenID Connect ID token (RFC 8693 §3), also a JWT.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The token type of an access token (RFC 8693 §3): what an exchange issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest base64 part of `Authorization: Basic` read; longer is
/// refused before decoding.
pub const MAX_BASIC_CREDENTIALS_LEN: usize = 2048;

/// What a form parameter's value is, for the API description (the parser
/// reads each one as text; these say what text it expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterValue {
    /// Any text.
    Text,
    /// [`CLIENT_CREDENTIALS_GRANT`], [`JWT_BEARER_GRANT`],
    /// [`REFRESH_TOKEN_GRANT`] or [`TOKEN_EXCHANGE_GRANT`].
    GrantType,
    /// A token type URI of RFC 8693 §3.
    TokenType,
    /// Exactly [`CLIENT_ASSERTION_TYPE`].
    ClientAssertionType,
    /// Space-separated scope tokens.
    Scope,
    /// Text that is not blank.
    NonBlank,
}

/// One parameter of an OAuth endpoint's form: the parser reads these tables
/// (which parameters may repeat, which carry a credential) and the server's
/// API description is generated from them, so the two cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormParameter {
    /// The parameter's name.
    pub name: &'static str,
    /// A sentence for people.
    pub description: &'static str,
    /// What its value is.
    pub value: ParameterValue,
    /// Whether the form is refused without it.
    pub required: bool,
    /// Whether it may repeat (RFC 6749 §3.2 forbids it for the others).
    pub repeats: bool,
    /// Whether its value is a credential (a live one needs TLS).
    pub credential: bool,
}

const fn parameter(name: &'static str, description: &'static str) -> FormParameter {
    FormParameter {
        name,
        description,
        value: ParameterValue::Text,
        required: false,
        repeats: false,
        credential: false,
    }
}

impl FormParameter {
    const fn of(self, value: ParameterValue) -> Self {
        FormParameter { value, ..self }
    }
    const fn required(self) -> Self {
        FormParameter {
            required: true,
            ..self
        }
    }
    const fn repeats(self) -> Self {
        FormParameter {
            repeats: true,
            ..self
        }
    }
    const fn credential(self) -> Self {
        FormParameter {
            credential: true,
            ..self
        }
    }
}

/// The form of `POST /oauth/token` (RFC 6749 §4.4, RFC 7523, RFC 8693,
/// RFC 8707). Parameters not listed are ignored (RFC 6749 §3.2), repeated or
/// not; of those listed, the first one found repeated (in this order) is
/// reported.
pub const TOKEN_FORM: [FormParameter; 15] = [
    parameter("grant_type", "The grant.")
        .of(ParameterValue::GrantType)
        .required(),
    parameter(
        "assertion",
        "The signed JWT (JWT-bearer grant, RFC 7523 §2.1).",
    )
    .credential(),
    parameter(
        "refresh_token",
        "A session's refresh token (refresh-token grant, RFC 6749 §6).",
    )
    .credential(),
    parameter(
        "subject_token",
        "The token of a trusted issuer to exchange (token exchange, RFC 8693 §2.1).",
    )
    .credential(),
    parameter(
        "subject_token_type",
        "`urn:ietf:params:oauth:token-type:jwt` (or `…:id_token`) with `subject_token`.",
    )
    .of(ParameterValue::TokenType),
    parameter(
        "requested_token_type",
        "`urn:ietf:params:oauth:token-type:access_token` (the default) or `…:jwt`.",
    )
    .of(ParameterValue::TokenType),
    parameter(
        "actor_token",
        "Not supported: a token exchange with an actor token is refused.",
    )
    .credential(),
    parameter(
        "client_id",
        "The user id (for `client_secret_post`, or naming the client of an assertion).",
    ),
    parameter(
        "client_secret",
        "The client secret (for `client_secret_post`).",
    )
    .credential(),
    parameter(
        "client_assertion_type",
        "`urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (for `private_key_jwt`).",
    )
    .of(ParameterValue::ClientAssertionType),
    parameter(
        "client_assertion",
        "The signed client assertion (for `private_key_jwt`).",
    )
    .credential(),
    parameter(
        "tenant_id",
        "Tenant to scope the token to (default: the workspace).",
    ),
    parameter("scope", "Space-separated permissions.").of(ParameterValue::Scope),
    parameter("audience", "Audience of the token (may repeat).").repeats(),
    parameter("resource", "RFC 8707 resource indicator (may repeat).").repeats(),
];

/// The form of introspection (RFC 7662) and revocation (RFC 7009).
pub const TOKEN_HINT_FORM: [FormParameter; 4] = [
    parameter("token", "The access token or API key.")
        .of(ParameterValue::NonBlank)
        .required()
        .credential(),
    parameter(
        "token_type_hint",
        "`access_token` or `api_key` (a hint; both are tried).",
    ),
    parameter(
        "client_id",
        "The caller's client id (for `client_secret_post`).",
    ),
    parameter(
        "client_secret",
        "The caller's client secret (for `client_secret_post`).",
    )
    .credential(),
];

/// Every parameter of the OAuth endpoints' forms.
pub fn form_parameters() -> impl Iterator<Item = &'static FormParameter> {
    TOKEN_FORM.iter().chain(TOKEN_HINT_FORM.iter())
}

/// Whether `name` is a parameter whose value is a credential, in any of the
/// OAuth endpoints' forms.
pub fn is_credential_parameter(name: &str) -> bool {
    form_parameters().any(|p| p.credential && p.name == name)
}

/// Why a form was refused: an RFC 6749 error code and a description for
/// people. Descriptions name parameters but never echo a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// `invalid_request` (400): malformed, a repeated parameter, a missing
    /// one, or more than one client authentication method.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// `invalid_client` (401): the client authentication is unusable or
    /// absent. `basic` says whether `Authorization: Basic` was sent, which
    /// decides the `WWW-Authenticate` challenge (RFC 6749 §5.2).
    #[error("invalid_client: {INVALID_CLIENT_DETAIL}")]
    InvalidClient {
        /// `Authorization: Basic` was used.
        basic: bool,
    },
    /// `unsupported_grant_type` (400).
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
}

/// The one description of every failed client authentication.
pub const INVALID_CLIENT_DETAIL: &str = "client authentication failed";

impl FormError {
    fn invalid_request(detail: impl Into<String>) -> Self {
        FormError::InvalidRequest(detail.into())
    }

    /// The RFC 6749 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            FormError::InvalidRequest(_) => "invalid_request",
            FormError::InvalidClient { .. } => "invalid_client",
            FormError::UnsupportedGrantType(_) => "unsupported_grant_type",
        }
    }

    /// The `error_description`.
    pub fn detail(&self) -> &str {
        match self {
            FormError::InvalidRequest(d) | FormError::UnsupportedGrantType(d) => d,
            FormError::InvalidClient { .. } => INVALID_CLIENT_DETAIL,
        }
    }
}

/// The parameters of an `application/x-www-form-urlencoded` body, in order,
/// repeats included. Their `Debug` shows the names the endpoints know and
/// hides every value (and every other name).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes a body the way `axum::Form` does (`form_urlencoded`: `+` is
    /// a space, bad UTF-8 becomes U+FFFD; it never fails).
    pub fn parse(body: &[u8]) -> Self {
        Params(form_urlencoded::parse(body).into_owned().collect())
    }

    /// Parameters already decoded.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Params(pairs)
    }

    /// The decoded pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of `name`, which must not repeat (RFC 6749 §3.2).
    pub fn one(&self, name: &str) -> Result<Option<&str>, FormError> {
        let mut found = self.values(name);
        let first = found.next();
        if found.next().is_some() {
            return Err(FormError::invalid_request(format!(
                "the parameter {name} must not repeat"
            )));
        }
        Ok(first)
    }

    /// Every value of `name`, in order (for the parameters that may repeat).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values(name).collect()
    }

    /// The first value of `name`, repeated or not: for callers that only
    /// look (the brute-force counters), never for deciding a request.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name).next()
    }

    fn values<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known = |k: &str| form_parameters().any(|p| p.name == k);
        let mut list = f.debug_list();
        for (k, _) in &self.0 {
            list.entry(&format_args!(
                "{}=[redacted]",
                if known(k) { k.as_str() } else { "?" }
            ));
        }
        list.finish()
    }
}

/// Client id and secret from `Authorization: Basic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub secret: Secret,
}

/// Decodes `Authorization: Basic` from the header's raw bytes: base64 of
/// `id:secret`, each part form-urlencoded first (RFC 6749 §2.3.1).
///
/// `Ok(None)` when there is no header or its scheme is not Basic. A header
/// that is not visible ASCII (what `HeaderValue::to_str` accepts), has no
/// scheme, or is a Basic credential that does not decode is
/// `invalid_client` with the Basic challenge.
pub fn basic_credentials(
    authorization: Option<&[u8]>,
) -> Result<Option<BasicCredentials>, FormError> {
    let Some(value) = authorization else {
        return Ok(None);
    };
    let fail = || FormError::InvalidClient { basic: true };
    if !value.iter().all(|&b| (32..127).contains(&b) || b == b'\t') {
        return Err(fail());
    }
    let value = std::str::from_utf8(value).map_err(|_| fail())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(fail());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    if encoded.len() > MAX_BASIC_CREDENTIALS_LEN {
        return Err(fail());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| fail())?;
    let decoded = String::from_utf8(decoded).map_err(|_| fail())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(fail)?;
    Ok(Some(BasicCredentials {
        client_id: form_decode(id).ok_or_else(fail)?,
        secret: Secret::new(form_decode(secret).ok_or_else(fail)?),
    }))
}

/// An `Authorization` header, read once for everything that asks about it:
/// whether the request had one, its Bearer credential, and its Basic
/// credentials decoded (RFC 6749 §2.3.1) or why they could not be (raised
/// where the OAuth rules read the client authentication, so errors keep
/// their order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    present: bool,
    bearer: Option<Secret>,
    basic: Result<Option<BasicCredentials>, FormError>,
}

impl Default for AuthorizationHeader {
    fn default() -> Self {
        AuthorizationHeader::read(None)
    }
}

impl AuthorizationHeader {
    /// Reads the header's raw value (the first, if repeated).
    pub fn read(value: Option<&[u8]>) -> Self {
        AuthorizationHeader {
            present: value.is_some(),
            bearer: value.and_then(bearer_token),
            basic: basic_credentials(value),
        }
    }

    /// Whether the request had an `Authorization` header at all.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// The credential of `Authorization: Bearer <credential>` (trimmed, not
    /// empty).
    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_ref().map(Secret::expose)
    }

    /// The Basic credentials, `Ok(None)` for another scheme or no header.
    pub fn basic(&self) -> Result<Option<&BasicCredentials>, FormError> {
        self.basic
            .as_ref()
            .map(Option::as_ref)
            .map_err(Clone::clone)
    }
}

/// The credential of a `Bearer` header value, as `HeaderValue::to_str`
/// reads it: visible ASCII, the scheme in any case, the credential trimmed
/// and not empty.
fn bearer_token(value: &[u8]) -> Option<Secret> {
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.bytes().all(|b| (32..127).contains(&b) || b == b'\t'))?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| Secret::new(token.to_owned()))
}

/// `application/x-www-form-urlencoded` decoding of one Basic part; `None`
/// when the result is not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let plus_free = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_free)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The value of an `Authorization: Basic` header for this client id and
/// secret, each part form-urlencoded (RFC 6749 §2.3.1): what clients send.
pub fn basic_header(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let joined = format!("{}:{}", encode(client_id), encode(secret));
    format!("Basic {}", STANDARD.encode(joined))
}

/// How the client authenticated: at most one method (RFC 6749 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client authentication.
    None,
    /// `client_secret_basic`.
    Basic {
        /// The client id.
        client_id: String,
        /// The client secret (or an API key of the client).
        secret: Secret,
    },
    /// `client_secret_post`.
    Post {
        /// The client id.
        client_id: String,
        /// The client secret (or an API key of the client).
        secret: Secret,
    },
    /// `private_key_jwt` (RFC 7523 §2.2).
    Assertion {
        /// `client_id`, when sent: the assertion's subject must be it.
        client_id: Option<String>,
        /// The signed assertion.
        assertion: Secret,
    },
}

impl ClientAuth {
    /// Reads the client authentication of a request: the `Authorization`
    /// header's raw value and the form. `ClientAuth::None` when the request
    /// carries none (a `client_id` alone, a secret without a `client_id` or
    /// an `Authorization` of another scheme are none).
    pub fn parse(authorization: Option<&[u8]>, params: &Params) -> Result<Self, FormError> {
        ClientAuth::from_header(&AuthorizationHeader::read(authorization), params)
    }

    /// [`ClientAuth::parse`], the header already read.
    pub fn from_header(header: &AuthorizationHeader, params: &Params) -> Result<Self, FormError> {
        let basic = header.basic()?.cloned();
        let post_id = params.one("client_id")?;
        let post_secret = params.one("client_secret")?;
        let assertion_type = params.one("client_assertion_type")?;
        let client_assertion = params.one("client_assertion")?;
        let several =
            || FormError::invalid_request("use one client authentication method, not several");
        if assertion_type.is_some() || client_assertion.is_some() {
            if basic.is_some() || post_secret.is_some() {
                return Err(several());
            }
            if assertion_type != Some(CLIENT_ASSERTION_TYPE) {
                return Err(FormError::invalid_request(format!(
                    "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
                )));
            }
            let assertion = client_assertion
                .ok_or_else(|| FormError::invalid_request("client_assertion is required"))?;
            return Ok(ClientAuth::Assertion {
                client_id: post_id.map(str::to_owned),
                assertion: Secret::new(assertion.to_owned()),
            });
        }
        Ok(match (basic, post_id, post_secret) {
            (Some(_), _, Some(_)) => return Err(several()),
            (Some(basic), Some(body_id), None) if body_id != basic.client_id => {
                return Err(FormError::invalid_request(
                    "client_id differs from the authenticated client",
                ))
            }
            (Some(BasicCredentials { client_id, secret }), _, None) => {
                ClientAuth::Basic { client_id, secret }
            }
            (None, Some(id), Some(secret)) => ClientAuth::Post {
                client_id: id.to_owned(),
                secret: Secret::new(secret.to_owned()),
            },
            (None, _, _) => ClientAuth::None,
        })
    }

    /// [`ClientAuth::parse`] where authentication is required: none is
    /// `invalid_client` (without the Basic challenge).
    pub fn required(authorization: Option<&[u8]>, params: &Params) -> Result<Self, FormError> {
        ClientAuth::required_from_header(&AuthorizationHeader::read(authorization), params)
    }

    /// [`ClientAuth::required`], the header already read.
    pub fn required_from_header(
        header: &AuthorizationHeader,
        params: &Params,
    ) -> Result<Self, FormError> {
        match ClientAuth::from_header(header, params)? {
            ClientAuth::None => Err(FormError::InvalidClient { basic: false }),
            auth => Ok(auth),
        }
    }

    /// The client id the request names, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            ClientAuth::None => None,
            ClientAuth::Basic { client_id, .. } | ClientAuth::Post { client_id, .. } => {
                Some(client_id)
            }
            ClientAuth::Assertion { client_id, .. } => client_id.as_deref(),
        }
    }

    /// Whether the method is `client_secret_basic` (a failure then answers
    /// with the Basic challenge).
    pub fn used_basic(&self) -> bool {
        matches!(self, ClientAuth::Basic { .. })
    }
}

/// The grant of a token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
    /// The JWT-bearer grant (RFC 7523 §2.1).
    JwtBearer {
        /// The `assertion` that names and authenticates the client.
        assertion: Secret,
    },
    /// The refresh-token grant (RFC 6749 §6) of a login session.
    RefreshToken {
        /// The `refresh_token`.
        refresh_token: Secret,
    },
    /// The token exchange (RFC 8693 §2.1): a trusted issuer's JWT for a
    /// Latchkey access token.
    TokenExchange {
        /// The `subject_token`.
        subject_token: Secret,
        /// Its `subject_token_type`: [`JWT_TOKEN_TYPE`] or [`ID_TOKEN_TYPE`].
        subject_token_type: String,
    },
}

impl Grant {
    /// Reads `grant_type` (and the JWT-bearer grant's `assertion`).
    pub fn parse(params: &Params) -> Result<Self, FormError> {
        let grant_type = params
            .one("grant_type")?
            .ok_or_else(|| FormError::invalid_request("grant_type is required"))?;
        match grant_type {
            CLIENT_CREDENTIALS_GRANT => Ok(Grant::ClientCredentials),
            JWT_BEARER_GRANT => {
                let assertion = params
                    .one("assertion")?
                    .ok_or_else(|| FormError::invalid_request("assertion is required"))?;
                Ok(Grant::JwtBearer {
                    assertion: Secret::new(assertion.to_owned()),
                })
            }
            REFRESH_TOKEN_GRANT => {
                let refresh_token = params
                    .one("refresh_token")?
                    .ok_or_else(|| FormError::invalid_request("refresh_token is required"))?;
                Ok(Grant::RefreshToken {
                    refresh_token: Secret::new(refresh_token.to_owned()),
                })
            }
            TOKEN_EXCHANGE_GRANT => {
                let subject_token = params
                    .one("subject_token")?
                    .ok_or_else(|| FormError::invalid_request("subject_token is required"))?;
                let subject_token_type = params
                    .one("subject_token_type")?
                    .ok_or_else(|| FormError::invalid_request("subject_token_type is required"))?;
                if ![JWT_TOKEN_TYPE, ID_TOKEN_TYPE].contains(&subject_token_type) {
                    return Err(FormError::invalid_request(format!(
                        "subject_token_type must be {JWT_TOKEN_TYPE} or {ID_TOKEN_TYPE}"
                    )));
                }
                if let Some(requested) = params.one("requested_token_type")? {
                    if ![ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE].contains(&requested) {
                        return Err(FormError::invalid_request(format!(
                            "requested_token_type must be {ACCESS_TOKEN_TYPE} or {JWT_TOKEN_TYPE}"
                        )));
                    }
                }
                if params.one("actor_token")?.is_some() {
                    return Err(FormError::invalid_request(
                        "actor_token is not supported: exchange the subject's own token",
                    ));
                }
                Ok(Grant::TokenExchange {
                    subject_token: Secret::new(subject_token.to_owned()),
                    subject_token_type: subject_token_type.to_owned(),
                })
            }
            _ => Err(FormError::UnsupportedGrantType(format!(
                "supported grant types: {CLIENT_CREDENTIALS_GRANT}, {JWT_BEARER_GRANT}, \
                 {REFRESH_TOKEN_GRANT}, {TOKEN_EXCHANGE_GRANT}"
            ))),
        }
    }
}

/// The token named by an introspection or revocation form
/// ([`TOKEN_HINT_FORM`]): `token`, trimmed and not blank. `token_type_hint`
/// is only a hint (both kinds are tried), but neither may repeat.
pub fn hinted_token(params: &Params) -> Result<&str, FormError> {
    let token = params
        .one("token")?
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| FormError::invalid_request("token is required"))?;
    params.one("token_type_hint")?;
    Ok(token)
}

/// A request to the token endpoint (`POST /oauth/token`), as it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestForm {
    /// The grant.
    pub grant: Grant,
    /// The client authentication: never `None` for `client_credentials`;
    /// optional beside a JWT-bearer grant, whose assertion names the client.
    pub client_auth: ClientAuth,
    /// `tenant_id`.
    pub tenant_id: Option<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// `audience` values, in order.
    pub audiences: Vec<String>,
    /// `resource` values (RFC 8707), in order.
    pub resources: Vec<String>,
}

impl TokenRequestForm {
    /// Reads a token request from the raw `Authorization` header value and
    /// the form. Errors come in this order: the grant, the client
    /// authentication, then any other repeated parameter.
    pub fn parse(authorization: Option<&[u8]>, params: &Params) -> Result<Self, FormError> {
        TokenRequestForm::from_header(&AuthorizationHeader::read(authorization), params)
    }

    /// [`TokenRequestForm::parse`], the header already read.
    pub fn from_header(header: &AuthorizationHeader, params: &Params) -> Result<Self, FormError> {
        let grant = Grant::parse(params)?;
        let client_auth = match grant {
            Grant::ClientCredentials => ClientAuth::required_from_header(header, params)?,
            Grant::JwtBearer { .. } | Grant::RefreshToken { .. } | Grant::TokenExchange { .. } => {
                // Client authentication beside the grant is optional; any
                // sign of it means it must be complete and valid.
                let attempted = header.is_present()
                    || params.one("client_secret")?.is_some()
                    || params.one("client_assertion")?.is_some();
                if attempted {
                    ClientAuth::required_from_header(header, params)?
                } else {
                    ClientAuth::None
                }
            }
        };
        let tenant_id = params.one("tenant_id")?.map(str::to_owned);
        let scope = params.one("scope")?.map(str::to_owned);
        // Even the parameters this grant does not read must not repeat.
        for parameter in TOKEN_FORM.iter().filter(|p| !p.repeats) {
            params.one(parameter.name)?;
        }
        let owned = |name| params.all(name).into_iter().map(str::to_owned).collect();
        Ok(TokenRequestForm {
            grant,
            client_auth,
            tenant_id,
            scope,
            audiences: owned("audience"),
            resources: owned("resource"),
        })
    }

    /// The request as a client would send it: the `Authorization` header
    /// value (for Basic) and the form body. Parsing them gives this request
    /// back, as long as the Basic part stays within
    /// [`MAX_BASIC_CREDENTIALS_LEN`].
    pub fn encode(&self) -> (Option<String>, String) {
        let mut form = form_urlencoded::Serializer::new(String::new());
        match &self.grant {
            Grant::ClientCredentials => {
                form.append_pair("grant_type", CLIENT_CREDENTIALS_GRANT);
            }
            Grant::JwtBearer { assertion } => {
                form.append_pair("grant_type", JWT_BEARER_GRANT);
                form.append_pair("assertion", assertion.expose());
            }
            Grant::RefreshToken { refresh_token } => {
                form.append_pair("grant_type", REFRESH_TOKEN_GRANT);
                form.append_pair("refresh_token", refresh_token.expose());
            }
            Grant::TokenExchange {
                subject_token,
                subject_token_type,
            } => {
                form.append_pair("grant_type", TOKEN_EXCHANGE_GRANT);
                form.append_pair("subject_token", subject_token.expose());
                form.append_pair("subject_token_type", subject_token_type);
            }
        }
        let mut header = None;
        match &self.client_auth {
            ClientAuth::None => {}
            ClientAuth::Basic { client_id, secret } => {
                header = Some(basic_header(client_id, secret.expose()));
            }
            ClientAuth::Post { client_id, secret } => {
                form.append_pair("client_id", client_id);
                form.append_pair("client_secret", secret.expose());
            }
            ClientAuth::Assertion {
                client_id,
                assertion,
            } => {
                if let Some(id) = client_id {
                    form.append_pair("client_id", id);
                }
                form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
                form.append_pair("client_assertion", assertion.expose());
            }
        }
        if let Some(tenant_id) = &self.tenant_id {
            form.append_pair("tenant_id", tenant_id);
        }
        if let Some(scope) = &self.scope {
            form.append_pair("scope", scope);
        }
        for audience in &self.audiences {
            form.append_pair("audience", audience);
        }
        for resource in &self.resources {
            form.append_pair("resource", resource);
        }
        (header, form.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authorization_header_is_read_once_for_bearer_and_basic() {
        let basic = basic_header("usr_1", "s3cret");
        // (header, present, bearer, basic client id)
        type Row<'a> = (Option<&'a str>, bool, Option<&'a str>, Option<&'a str>);
        let table: &[Row] = &[
            (None, false, None, None),
            (
                Some("Bearer lk_test_admin_x"),
                true,
                Some("lk_test_admin_x"),
                None,
            ),
            (Some("bearer   tok  "), true, Some("tok"), None),
            (Some("BEARER tok"), true, Some("tok"), None),
            (Some("Bearer "), true, None, None),
            (Some("Token tok"), true, None, None),
            (Some(&basic), true, None, Some("usr_1")),
        ];
        for (raw, present, bearer, client) in table {
            let h = AuthorizationHeader::read(raw.map(str::as_bytes));
            assert_eq!(h.is_present(), *present, "{raw:?}");
            assert_eq!(h.bearer(), *bearer, "{raw:?}");
            assert_eq!(
                h.basic().unwrap().map(|b| b.client_id.as_str()),
                *client,
                "{raw:?}"
            );
        }
        // Not visible ASCII: no bearer, and Basic's refusal kept for the
        // OAuth rules to raise in their order.
        let h = AuthorizationHeader::read(Some(b"Bearer t\xffk"));
        assert_eq!(h.bearer(), None);
        assert_eq!(h.basic(), Err(FormError::InvalidClient { basic: true }));
        // No scheme at all: no bearer, and a refusal for the OAuth rules.
        let h = AuthorizationHeader::read(Some(b"Bearer"));
        assert_eq!(h.bearer(), None);
        assert!(h.basic().is_err());
        assert_eq!(
            AuthorizationHeader::default(),
            AuthorizationHeader::read(None)
        );
    }

    fn params(body: &str) -> Params {
        Params::parse(body.as_bytes())
    }

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    fn token(header: Option<&str>, body: &str) -> Result<TokenRequestForm, FormError> {
        TokenRequestForm::parse(header.map(str::as_bytes), &params(body))
    }

    fn invalid_request(detail: &str) -> FormError {
        FormError::InvalidRequest(detail.to_owned())
    }

    const ASSERTION_TYPE_PAIR: &str =
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
    const JWT_BEARER_PAIR: &str =
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

    #[test]
    fn bodies_decode_like_axum_form() {
        let p = params("a=1+2&b=%41%2B&&c&d=&a=x%zz&e=%FF");
        assert_eq!(
            p.pairs(),
            [
                ("a".into(), "1 2".into()),
                ("b".into(), "A+".into()),
                ("c".into(), String::new()),
                ("d".into(), String::new()),
                ("a".into(), "x%zz".into()),
                ("e".into(), "\u{fffd}".into()),
            ]
        );
        assert_eq!(Params::parse(b""), Params::default());
        assert_eq!(
            Params::from_pairs(vec![("a".into(), "1 2".into())]),
            params("a=1%202")
        );
    }

    #[test]
    fn one_refuses_repeats_and_all_keeps_order() {
        let p = params("a=1&b=2&b=3&c=");
        assert_eq!(p.one("a"), Ok(Some("1")));
        assert_eq!(p.one("c"), Ok(Some("")));
        assert_eq!(p.one("z"), Ok(None));
        assert_eq!(
            p.one("b"),
            Err(invalid_request("the parameter b must not repeat"))
        );
        assert_eq!(p.all("b"), ["2", "3"]);
        assert!(p.all("z").is_empty());
        assert_eq!(p.first("b"), Some("2"));
        assert_eq!(p.first("z"), None);
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = basic("usr_a%2Bb:s%3Acret+x:y");
        let got = basic_credentials(Some(header.as_bytes())).unwrap().unwrap();
        assert_eq!(got.client_id, "usr_a+b");
        assert_eq!(got.secret.expose(), "s:cret x:y");
        // The scheme is case-insensitive; space around the value is trimmed.
        let header = format!("bAsIc  {} ", STANDARD.encode("id:pw"));
        let got = basic_credentials(Some(header.as_bytes())).unwrap().unwrap();
        assert_eq!((got.client_id.as_str(), got.secret.expose()), ("id", "pw"));
        // Empty parts are parts.
        let header = basic(":");
        let got = basic_credentials(Some(header.as_bytes())).unwrap().unwrap();
        assert_eq!((got.client_id.as_str(), got.secret.expose()), ("", ""));
    }

    #[test]
    fn no_header_or_another_scheme_is_no_basic_credential() {
        assert_eq!(basic_credentials(None), Ok(None));
        assert_eq!(basic_credentials(Some(b"Bearer x")), Ok(None));
        assert_eq!(basic_credentials(Some(b"Digest a b c")), Ok(None));
    }

    #[test]
    fn broken_basic_headers_are_invalid_client_with_the_basic_challenge() {
        let long = format!("Basic {}", "QUFB".repeat(MAX_BASIC_CREDENTIALS_LEN / 4 + 1));
        let bad_utf8 = format!("Basic {}", STANDARD.encode(b"id:\xff"));
        let bad_escape = basic("id:%FF");
        let bad_id_escape = basic("%C3%28:pw");
        let cases: Vec<&[u8]> = vec![
            b"Basic",                 // no space
            b"Basic !!!",             // not base64
            b"Basic bm9jb2xvbg==",    // "nocolon"
            b"Basic \x7f",            // not visible ASCII
            b"Basic caf\xc3\xa9",     // not ASCII at all
            b"B\xc3\xa4sic eA==",     // nor is the scheme
            long.as_bytes(),          // over the limit
            bad_utf8.as_bytes(),      // decoded bytes not UTF-8
            bad_escape.as_bytes(),    // form-decoded secret not UTF-8
            bad_id_escape.as_bytes(), // form-decoded id not UTF-8
        ];
        for value in cases {
            assert_eq!(
                basic_credentials(Some(value)),
                Err(FormError::InvalidClient { basic: true }),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        // At the limit is still read.
        let at_limit = format!(
            "Basic {}",
            STANDARD.encode(format!(
                "id:{}",
                "x".repeat(MAX_BASIC_CREDENTIALS_LEN / 4 * 3 - 3)
            ))
        );
        assert_eq!(at_limit.len(), "Basic ".len() + MAX_BASIC_CREDENTIALS_LEN);
        assert!(basic_credentials(Some(at_limit.as_bytes()))
            .unwrap()
            .is_some());
    }

    #[test]
    fn basic_header_round_trips() {
        for (id, secret) in [
            ("usr_1", "lk_test_secret_x"),
            ("a:b+c d%e", "p:q+r s%t&u=v"),
            ("ünï", "çødé ☃"),
            ("", ""),
        ] {
            let header = basic_header(id, secret);
            let got = basic_credentials(Some(header.as_bytes())).unwrap().unwrap();
            assert_eq!(got.client_id, id);
            assert_eq!(got.secret.expose(), secret);
        }
    }

    #[test]
    fn client_secret_basic_and_post() {
        let header = basic("usr_1:pw");
        let auth = ClientAuth::parse(Some(header.as_bytes()), &params("")).unwrap();
        assert_eq!(
            auth,
            ClientAuth::Basic {
                client_id: "usr_1".into(),
                secret: Secret::new("pw".into())
            }
        );
        assert!(auth.used_basic());
        assert_eq!(auth.client_id(), Some("usr_1"));
        // The body may repeat the same client id.
        let same = ClientAuth::parse(Some(header.as_bytes()), &params("client_id=usr_1"));
        assert_eq!(same, Ok(auth));
        let post =
            ClientAuth::parse(None, &params("client_id=usr_1&client_secret=p+w%26")).unwrap();
        assert_eq!(
            post,
            ClientAuth::Post {
                client_id: "usr_1".into(),
                secret: Secret::new("p w&".into())
            }
        );
        assert!(!post.used_basic());
    }

    #[test]
    fn client_assertions() {
        let body = format!("{ASSERTION_TYPE_PAIR}&client_assertion=a.b.c");
        let auth = ClientAuth::parse(None, &params(&body)).unwrap();
        assert_eq!(
            auth,
            ClientAuth::Assertion {
                client_id: None,
                assertion: Secret::new("a.b.c".into())
            }
        );
        assert_eq!(auth.client_id(), None);
        let with_id = format!("{body}&client_id=usr_1");
        let auth = ClientAuth::parse(None, &params(&with_id)).unwrap();
        assert_eq!(auth.client_id(), Some("usr_1"));
        assert!(!auth.used_basic());
    }

    #[test]
    fn client_assertion_rules() {
        let wrong_type = invalid_request(&format!(
            "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
        ));
        for body in [
            "client_assertion=a.b.c",
            "client_assertion_type=x&client_assertion=a.b.c",
            "client_assertion_type=",
        ] {
            assert_eq!(
                ClientAuth::parse(None, &params(body)),
                Err(wrong_type.clone()),
                "{body}"
            );
        }
        assert_eq!(
            ClientAuth::parse(None, &params(ASSERTION_TYPE_PAIR)),
            Err(invalid_request("client_assertion is required"))
        );
    }

    #[test]
    fn one_method_not_several() {
        let several = Err(invalid_request(
            "use one client authentication method, not several",
        ));
        let header = basic("usr_1:pw");
        let assertion = format!("{ASSERTION_TYPE_PAIR}&client_assertion=a.b.c");
        let with_secret = format!("{assertion}&client_id=usr_1&client_secret=pw");
        let cases = [
            (Some(&header), "client_secret=pw"),
            (Some(&header), "client_id=usr_1&client_secret=pw"),
            (Some(&header), assertion.as_str()),
            (Some(&header), ASSERTION_TYPE_PAIR),
            (None, with_secret.as_str()),
            (None, "client_secret=pw&client_assertion=a.b.c"),
        ];
        for (header, body) in cases {
            let got = ClientAuth::parse(header.map(|h| h.as_bytes()), &params(body));
            assert_eq!(got, several, "{header:?} {body}");
        }
    }

    #[test]
    fn the_body_client_id_must_match_basic() {
        let header = basic("usr_1:pw");
        assert_eq!(
            ClientAuth::parse(Some(header.as_bytes()), &params("client_id=usr_2")),
            Err(invalid_request(
                "client_id differs from the authenticated client"
            ))
        );
    }

    #[test]
    fn no_usable_method_is_none_or_invalid_client() {
        for (header, body) in [
            (None, ""),
            (None, "client_id=usr_1"),
            (None, "client_secret=pw"),
            (Some("Bearer lk_test_key_x"), "client_id=usr_1"),
        ] {
            let header = header.map(str::as_bytes);
            assert_eq!(
                ClientAuth::parse(header, &params(body)),
                Ok(ClientAuth::None)
            );
            assert_eq!(
                ClientAuth::required(header, &params(body)),
                Err(FormError::InvalidClient { basic: false }),
                "{body}"
            );
        }
    }

    #[test]
    fn client_authentication_parameters_must_not_repeat() {
        for name in [
            "client_id",
            "client_secret",
            "client_assertion_type",
            "client_assertion",
        ] {
            let body = format!("{name}=a&{name}=b");
            assert_eq!(
                ClientAuth::parse(None, &params(&body)),
                Err(invalid_request(&format!(
                    "the parameter {name} must not repeat"
                ))),
            );
        }
        // The Basic header is read first.
        assert_eq!(
            ClientAuth::parse(Some(b"Basic !"), &params("client_id=a&client_id=b")),
            Err(FormError::InvalidClient { basic: true })
        );
    }

    #[test]
    fn grants() {
        assert_eq!(
            Grant::parse(&params("grant_type=client_credentials")),
            Ok(Grant::ClientCredentials)
        );
        assert_eq!(
            Grant::parse(&params(&format!("{JWT_BEARER_PAIR}&assertion=a.b.c"))),
            Ok(Grant::JwtBearer {
                assertion: Secret::new("a.b.c".into())
            })
        );
        assert_eq!(
            Grant::parse(&params(JWT_BEARER_PAIR)),
            Err(invalid_request("assertion is required"))
        );
        assert_eq!(
            Grant::parse(&params("")),
            Err(invalid_request("grant_type is required"))
        );
        assert_eq!(
            Grant::parse(&params(
                "grant_type=client_credentials&grant_type=client_credentials"
            )),
            Err(invalid_request("the parameter grant_type must not repeat"))
        );
        let unsupported = Grant::parse(&params("grant_type=password")).unwrap_err();
        assert_eq!(unsupported.code(), "unsupported_grant_type");
        assert_eq!(
            unsupported.detail(),
            format!(
                "supported grant types: client_credentials, {JWT_BEARER_GRANT}, refresh_token, \
                 {TOKEN_EXCHANGE_GRANT}"
            )
        );
        assert_eq!(
            Grant::parse(&params(
                "grant_type=refresh_token&refresh_token=lk_test_refresh_x"
            )),
            Ok(Grant::RefreshToken {
                refresh_token: Secret::new("lk_test_refresh_x".into())
            })
        );
        assert_eq!(
            Grant::parse(&params("grant_type=refresh_token")),
            Err(invalid_request("refresh_token is required"))
        );
        // Every grant the metadata and the API description list is read.
        for grant in latchkey_types::oauth::GRANT_TYPES {
            let form = format!(
                "grant_type={grant}&assertion=a&refresh_token=r&subject_token=t&\
                 subject_token_type={JWT_TOKEN_TYPE}"
            );
            assert!(Grant::parse(&params(&form)).is_ok(), "{grant}");
        }
        // Grant types are compared exactly.
        assert_eq!(
            Grant::parse(&params("grant_type=Client_Credentials"))
                .unwrap_err()
                .code(),
            "unsupported_grant_type"
        );
    }

    #[test]
    fn token_exchange_reads_the_subject_token_and_refuses_what_it_cannot_honour() {
        let grant =
            |rest: &str| Grant::parse(&params(&format!("grant_type={TOKEN_EXCHANGE_GRANT}{rest}")));
        let jwt = format!("&subject_token_type={JWT_TOKEN_TYPE}");
        assert_eq!(
            grant(&format!("&subject_token=a.b.c{jwt}")),
            Ok(Grant::TokenExchange {
                subject_token: Secret::new("a.b.c".into()),
                subject_token_type: JWT_TOKEN_TYPE.into(),
            })
        );
        assert!(grant(&format!(
            "&subject_token=t&subject_token_type={ID_TOKEN_TYPE}&requested_token_type={ACCESS_TOKEN_TYPE}"
        ))
        .is_ok());
        let table: &[(String, &str)] = &[
            (jwt.clone(), "subject_token is required"),
            ("&subject_token=t".into(), "subject_token_type is required"),
            (
                format!("&subject_token=t&subject_token_type={ACCESS_TOKEN_TYPE}"),
                "subject_token_type must be",
            ),
            (
                format!("&subject_token=t{jwt}&requested_token_type=urn:x"),
                "requested_token_type must be",
            ),
            (
                format!("&subject_token=t{jwt}&actor_token=u"),
                "actor_token is not supported",
            ),
            (
                format!("&subject_token=t&subject_token=u{jwt}"),
                "the parameter subject_token must not repeat",
            ),
        ];
        for (rest, why) in table {
            let err = grant(rest).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{rest}");
            assert!(err.detail().starts_with(why), "{rest}: {}", err.detail());
        }
        // It round-trips through the client's encoding, with optional
        // client authentication beside it.
        let request = TokenRequestForm {
            grant: Grant::TokenExchange {
                subject_token: Secret::new("h.p.s".into()),
                subject_token_type: JWT_TOKEN_TYPE.into(),
            },
            client_auth: ClientAuth::None,
            tenant_id: Some("acme".into()),
            scope: None,
            audiences: vec![],
            resources: vec![],
        };
        let (header, body) = request.encode();
        assert_eq!(
            TokenRequestForm::parse(header.as_deref().map(str::as_bytes), &params(&body)),
            Ok(request)
        );
    }

    #[test]
    fn a_client_credentials_request_reads_whole() {
        let got = token(
            None,
            "grant_type=client_credentials&client_id=usr_1&client_secret=pw&tenant_id=ten_1\
             &scope=a%3Aread+b&audience=x&resource=https%3A%2F%2Fr&audience=y&unknown=1&unknown=2",
        )
        .unwrap();
        assert_eq!(
            got,
            TokenRequestForm {
                grant: Grant::ClientCredentials,
                client_auth: ClientAuth::Post {
                    client_id: "usr_1".into(),
                    secret: Secret::new("pw".into())
                },
                tenant_id: Some("ten_1".into()),
                scope: Some("a:read b".into()),
                audiences: vec!["x".into(), "y".into()],
                resources: vec!["https://r".into()],
            }
        );
    }

    #[test]
    fn client_credentials_require_client_authentication() {
        assert_eq!(
            token(None, "grant_type=client_credentials&client_id=usr_1"),
            Err(FormError::InvalidClient { basic: false })
        );
        let header = basic("usr_1:pw");
        let got = token(Some(&header), "grant_type=client_credentials").unwrap();
        assert!(got.client_auth.used_basic());
    }

    #[test]
    fn a_jwt_bearer_grant_may_come_without_client_authentication() {
        let body = format!("{JWT_BEARER_PAIR}&assertion=a.b.c&client_id=usr_1");
        let got = token(None, &body).unwrap();
        assert_eq!(
            got.grant,
            Grant::JwtBearer {
                assertion: Secret::new("a.b.c".into())
            }
        );
        // A client_id alone authenticates nothing and is not read.
        assert_eq!(got.client_auth, ClientAuth::None);
        // Any sign of client authentication must be complete.
        let header = basic("usr_1:pw");
        let got = token(Some(&header), &body).unwrap();
        assert!(got.client_auth.used_basic());
        for (header, extra) in [(Some("Bearer x"), ""), (None, "&client_secret=pw")] {
            let body = format!("{JWT_BEARER_PAIR}&assertion=a.b.c{extra}");
            assert_eq!(
                token(header, &body),
                Err(FormError::InvalidClient { basic: false }),
                "{body}"
            );
        }
        // An empty client_id is still a client_id.
        let body = format!("{JWT_BEARER_PAIR}&assertion=a.b.c&client_id=&client_secret=pw");
        assert_eq!(
            token(None, &body).unwrap().client_auth.client_id(),
            Some("")
        );
        let assertion = format!(
            "{JWT_BEARER_PAIR}&assertion=a.b.c&client_assertion=x.y.z&{ASSERTION_TYPE_PAIR}"
        );
        assert!(matches!(
            token(None, &assertion).unwrap().client_auth,
            ClientAuth::Assertion { .. }
        ));
        assert_eq!(
            token(
                None,
                &format!("{JWT_BEARER_PAIR}&assertion=a&client_assertion=x")
            ),
            Err(invalid_request(&format!(
                "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
            )))
        );
    }

    #[test]
    fn the_form_tables_say_which_parameters_repeat_and_which_are_credentials() {
        let repeating: Vec<&str> = form_parameters()
            .filter(|p| p.repeats)
            .map(|p| p.name)
            .collect();
        assert_eq!(repeating, ["audience", "resource"]);
        type Row<'a> = (&'a str, bool);
        let rows: [Row; 9] = [
            ("client_secret", true),
            ("assertion", true),
            ("client_assertion", true),
            ("token", true),
            ("client_id", false),
            ("grant_type", false),
            ("scope", false),
            ("token_type_hint", false),
            ("password", false),
        ];
        for (name, credential) in rows {
            assert_eq!(is_credential_parameter(name), credential, "{name}");
        }
    }

    #[test]
    fn a_hinted_token_is_required_trimmed_and_not_repeated() {
        type Row<'a> = (&'a str, Result<&'a str, FormError>);
        let required = invalid_request("token is required");
        let rows: [Row; 6] = [
            ("token=abc", Ok("abc")),
            ("token=+abc+&token_type_hint=api_key", Ok("abc")),
            ("", Err(required.clone())),
            ("token=+++", Err(required)),
            (
                "token=a&token=b",
                Err(invalid_request("the parameter token must not repeat")),
            ),
            (
                "token=a&token_type_hint=x&token_type_hint=y",
                Err(invalid_request(
                    "the parameter token_type_hint must not repeat",
                )),
            ),
        ];
        for (body, expected) in rows {
            assert_eq!(hinted_token(&params(body)), expected, "{body}");
        }
    }

    #[test]
    fn no_token_parameter_repeats_except_audience_and_resource() {
        let header = basic("usr_1:pw");
        for name in TOKEN_FORM.iter().filter(|p| !p.repeats).map(|p| p.name) {
            for grant in [
                "grant_type=client_credentials".to_owned(),
                format!("{JWT_BEARER_PAIR}&assertion=a.b.c"),
            ] {
                let body = format!("{grant}&{name}=v&{name}=v");
                assert_eq!(
                    token(Some(&header), &body),
                    Err(invalid_request(&format!(
                        "the parameter {name} must not repeat"
                    ))),
                    "{body}"
                );
            }
        }
        let ok = token(
            Some(&header),
            "grant_type=client_credentials&audience=a&audience=a&resource=r&resource=s",
        )
        .unwrap();
        assert_eq!(ok.audiences, ["a", "a"]);
        assert_eq!(ok.resources, ["r", "s"]);
    }

    #[test]
    fn errors_come_grant_first_then_client_then_the_rest() {
        assert_eq!(
            token(Some("Basic !"), "grant_type=nope&scope=a&scope=b")
                .unwrap_err()
                .code(),
            "unsupported_grant_type"
        );
        assert_eq!(
            token(
                Some("Basic !"),
                "grant_type=client_credentials&scope=a&scope=b"
            ),
            Err(FormError::InvalidClient { basic: true })
        );
        let header = basic("usr_1:pw");
        assert_eq!(
            token(
                Some(&header),
                "grant_type=client_credentials&scope=a&scope=b&tenant_id=a&tenant_id=b"
            ),
            Err(invalid_request("the parameter tenant_id must not repeat"))
        );
    }

    #[test]
    fn requests_encode_and_parse_back() {
        let requests = [
            (None, "grant_type=client_credentials&client_id=a+b&client_secret=%26%3D%2B"),
            (Some(basic("usr_1:p+w")), "grant_type=client_credentials&scope=x+y&tenant_id=t"),
            (
                None,
                &format!("{JWT_BEARER_PAIR}&assertion=a.b.c&audience=1&audience=2&resource=r"),
            ),
            (
                None,
                &format!(
                    "grant_type=client_credentials&client_id=u&{ASSERTION_TYPE_PAIR}&client_assertion=j"
                ),
            ),
        ];
        for (header, body) in requests {
            let parsed = token(header.as_deref(), body).unwrap();
            let (header, body) = parsed.encode();
            assert_eq!(token(header.as_deref(), &body), Ok(parsed), "{body}");
        }
    }

    #[test]
    fn errors_have_codes_and_details() {
        let e = FormError::InvalidClient { basic: true };
        assert_eq!(e.code(), "invalid_client");
        assert_eq!(e.detail(), INVALID_CLIENT_DETAIL);
        let e = invalid_request("grant_type is required");
        assert_eq!(e.code(), "invalid_request");
        assert_eq!(e.detail(), "grant_type is required");
        assert_eq!(e.to_string(), "invalid_request: grant_type is required");
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let header = basic("usr_1:sekrit-basic");
        let secretive = [
            (
                Some(header.as_str()),
                "grant_type=client_credentials&scope=s".to_owned(),
            ),
            (
                None,
                "grant_type=client_credentials&client_id=usr_1&client_secret=sekrit-post".into(),
            ),
            (
                None,
                format!("{JWT_BEARER_PAIR}&assertion=sekrit.grant&{ASSERTION_TYPE_PAIR}&client_assertion=sekrit.client"),
            ),
        ];
        for (header, body) in secretive {
            let p = params(&body);
            let parsed = TokenRequestForm::parse(header.map(str::as_bytes), &p).unwrap();
            let shown = format!("{parsed:?} {parsed:#?} {p:?}");
            assert!(!shown.contains("sekrit"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
        let b = basic_credentials(Some(header.as_bytes())).unwrap().unwrap();
        let shown = format!("{b:?}");
        assert!(
            !shown.contains("sekrit") && shown.contains("usr_1"),
            "{shown}"
        );
        // Unknown names are hidden too (a secret pasted without a name).
        let shown = format!("{:?}", params("lk_test_secret_sekrit&token=x&grant_type=y"));
        assert_eq!(
            shown,
            "[?=[redacted], token=[redacted], grant_type=[redacted]]"
        );
    }
}
