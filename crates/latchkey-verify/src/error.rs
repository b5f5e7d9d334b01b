//! Why a token was refused: one enum whose variants a caller can act on
//! (refuse with 401, refresh keys, fix configuration), never a bare string.

/// Why an access token was refused.
///
/// Every variant means "do not trust this token". They differ so that a
/// caller can log the reason, tell a configuration mistake (wrong issuer or
/// audience on the receiving side) from an attack, and map the outcome to
/// HTTP: all of them are a 401 `invalid_token` except
/// [`VerifyError::KeysUnavailable`], which is the verifier's own trouble
/// (a 503 is fairer to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a compact JWS: wrong number of parts, bad base64url, bad JSON,
    /// duplicate JSON keys, or a header without `alg`/`kid`.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Larger than [`crate::jwt::MAX_TOKEN_BYTES`]; refused before any parsing.
    #[error("token is too large")]
    TooLarge,
    /// The header names an algorithm this library never accepts (`none`,
    /// HMAC, or anything but EdDSA, ES256 and RS256).
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The header has a `crit` member: it asks for extensions we do not
    /// implement, so RFC 7515 §4.1.11 requires a refusal.
    #[error("token header has critical extensions")]
    CriticalHeader,
    /// No key of the issuer has this `kid` (after a refetch, when the
    /// verifier may refetch).
    #[error("no key with kid {0:?}")]
    UnknownKid(String),
    /// The header's `alg` differs from the `alg` of the key it names. The
    /// algorithm is always the key's; a token that claims another one is
    /// refused rather than verified with the key's.
    #[error("token alg {header:?} does not match the key's alg {key:?}")]
    AlgorithmMismatch {
        /// The `alg` of the token header.
        header: String,
        /// The `alg` of the JWK.
        key: String,
    },
    /// The signature does not verify with the named key.
    #[error("bad signature")]
    BadSignature,
    /// The payload verified but is not a Latchkey access token (a claim is
    /// missing or has the wrong type).
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// The header's `typ` is not `at+jwt` (RFC 9068): an ID token or some
    /// other JWT of the same issuer must not be accepted as an access token.
    #[error("token type is not at+jwt")]
    WrongType,
    /// `iss` is not the expected issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not name the expected audience.
    #[error("wrong audience")]
    WrongAudience,
    /// The token's `mode` (`test`/`live`) is not the expected one.
    #[error("wrong mode")]
    WrongMode,
    /// `exp` has passed (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is still in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway): the issuer's clock or
    /// ours is off, or the token was forged with a future date.
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// The verifier has no usable keys: discovery or the JWKS fetch failed
    /// and nothing is cached. Not the client's fault.
    #[error("issuer keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl VerifyError {
    /// Whether the failure is the verifier's (issuer unreachable) rather than
    /// the token's. Such a failure deserves a 503, not a 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VerifyError::KeysUnavailable(_))
    }
}
