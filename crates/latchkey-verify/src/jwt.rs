//! Pure JWT verification: given a token, the issuer's keys, what to expect
//! and the current time, say whether the token is a valid Latchkey access
//! token. No I/O, no clock, no global state, so the server itself can call
//! it (introspection) and tests can pin every input.
//!
//! The checks, in order: size; shape (three strict base64url parts); header
//! (`alg` is one we verify, no `crit`, a `kid`); the key named by `kid`;
//! the header's `alg` equals the key's; the signature, with the key's
//! algorithm; then the payload (JSON without duplicate keys, the claims of
//! a Latchkey access token), `typ`, `iss`, `mode`, `aud`, `exp`, `nbf` and
//! `iat`. Nothing in the payload is read before the signature verified.
//! Header members that point elsewhere for keys (`jku`, `x5u`, `jwk`,
//! `x5c`) are ignored: keys only ever come from the [`KeySet`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_types::admin::{Authorization, TenantRoles};
use latchkey_types::oauth::{claim, AccessTokenClaims, Actor, Audience};
use latchkey_types::{JsonObject, Mode, UserKind};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::jwks::{Algorithm, KeySet};

/// The largest token accepted, in bytes. A Latchkey token is well under
/// 2 KiB even with many tenants; the cap bounds the work a stranger can ask
/// for before the signature is checked.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The longest `kid` accepted, in bytes.
pub const MAX_KID_BYTES: usize = 256;

/// The default clock-skew allowance for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;

/// The `typ` header of an access token (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// What a token must say to be accepted, besides a valid signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// The exact issuer URL (`iss`).
    pub issuer: String,
    /// An audience `aud` must name; `None` does not check `aud`. A service
    /// should set this to its own identifier so that tokens meant for
    /// another service are refused.
    pub audience: Option<String>,
    /// The mode tokens must have. Live unless configured for test.
    pub mode: Mode,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`, in seconds.
    pub leeway_seconds: u64,
    /// Whether the header must say `typ: at+jwt` (RFC 9068). On by default.
    pub require_typ: bool,
}

impl Expectations {
    /// Expectations for tokens of `issuer`: live mode, any audience, 30 s of
    /// leeway, `typ: at+jwt` required.
    pub fn new(issuer: impl Into<String>) -> Self {
        Expectations {
            issuer: issuer.into(),
            audience: None,
            mode: Mode::Live,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            require_typ: true,
        }
    }

    /// Requires `aud` to name `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Requires tokens of `mode`.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the clock-skew allowance.
    pub fn leeway_seconds(mut self, seconds: u64) -> Self {
        self.leeway_seconds = seconds;
        self
    }
}

/// The protected header, as far as we read it.
#[derive(Debug)]
pub(crate) struct Header {
    /// One of the three algorithms we verify (anything else is refused
    /// while parsing).
    pub(crate) alg: Algorithm,
    /// Empty when the header has none (allowed only in [`verify_jws`]).
    pub(crate) kid: String,
    /// Whether `typ` says `at+jwt` (RFC 9068); false when there is none.
    pub(crate) typ_is_access_token: bool,
}

/// The parts of a compact JWS, with the header decoded and screened but
/// nothing verified.
struct Parts<'a> {
    header: Header,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

/// Verifies `token` with `keys` against `exp` at `now_unix` (seconds since
/// the Unix epoch) and returns its claims.
///
/// # Errors
/// The first check that failed, as a [`VerifyError`]. An unknown `kid` is
/// [`VerifyError::UnknownKid`], so a caller holding a cached key set knows
/// to refresh it (see `Verifier` with the `remote` feature, which does).
pub fn verify_jwt(
    token: &str,
    keys: &KeySet,
    exp: &Expectations,
    now_unix: i64,
) -> Result<Claims, VerifyError> {
    let parts = split(token)?;
    if parts.header.kid.is_empty() {
        return Err(VerifyError::Malformed("header has no kid"));
    }
    let key = keys
        .get(&parts.header.kid)
        .ok_or_else(|| VerifyError::UnknownKid(parts.header.kid.clone()))?;
    if parts.header.alg != key.alg {
        return Err(VerifyError::AlgorithmMismatch {
            header: parts.header.alg.as_str().to_owned(),
            key: key.alg.as_str().to_owned(),
        });
    }
    // Signatures are at most 1024 bytes (RSA-8192): decode on the stack.
    let mut buf = [0u8; SIGNATURE_BUF_BYTES];
    let mut heap = Vec::new();
    let signature = decode_part_into(parts.signature, &mut buf, &mut heap)?;
    key.key
        .verify_sig(parts.signing_input.as_bytes(), signature)
        .map_err(|_| VerifyError::BadSignature)?;

    // From here on the bytes are the issuer's.
    let payload = decode_part(parts.payload)?;
    let claims = parse_claims(&payload)?;
    check_claims(&parts.header, &claims, exp, now_unix)?;
    Ok(Claims::new(claims))
}

/// Reads the `kid` of a token's header without verifying anything, after
/// the same screening as [`verify_jwt`] (size, shape, algorithm, `crit`).
///
/// # Errors
/// As the first checks of [`verify_jwt`].
pub fn peek_kid(token: &str) -> Result<String, VerifyError> {
    let kid = split(token)?.header.kid;
    if kid.is_empty() {
        return Err(VerifyError::Malformed("header has no kid"));
    }
    Ok(kid)
}

/// Verifies only the signature of a compact JWS that is not an access token
/// (a client assertion, say) and returns its header and payload as JSON
/// objects, for the caller to check the claims its protocol needs. The same
/// screening as [`verify_jwt`] applies (size, `alg` among EdDSA, ES256 and
/// RS256 and equal to the key's, no `crit`); a header without `kid` is tried
/// against every key of the set with the header's algorithm.
///
/// # Errors
/// [`VerifyError::UnknownKid`] when no key matches, otherwise as
/// [`verify_jwt`].
pub fn verify_jws(token: &str, keys: &KeySet) -> Result<(Value, Value), VerifyError> {
    let parts = split(token)?;
    let signature = decode_part(parts.signature)?;
    let candidates: Vec<&str> = if parts.header.kid.is_empty() {
        keys.kids()
            .filter(|k| keys.algorithm(k) == Some(parts.header.alg))
            .collect()
    } else {
        vec![parts.header.kid.as_str()]
    };
    let mut seen_key = false;
    for kid in candidates {
        let Some(key) = keys.get(kid) else { continue };
        seen_key = true;
        if parts.header.alg != key.alg {
            return Err(VerifyError::AlgorithmMismatch {
                header: parts.header.alg.as_str().to_owned(),
                key: key.alg.as_str().to_owned(),
            });
        }
        if key
            .key
            .verify_sig(parts.signing_input.as_bytes(), &signature)
            .is_ok()
        {
            let header = strict_json(&decode_part(token.split('.').next().unwrap_or(""))?)?;
            let payload = strict_json(&decode_part(parts.payload)?)?;
            if !payload.is_object() {
                return Err(VerifyError::Malformed("payload is not a JSON object"));
            }
            return Ok((header, payload));
        }
    }
    if seen_key {
        Err(VerifyError::BadSignature)
    } else {
        Err(VerifyError::UnknownKid(parts.header.kid.clone()))
    }
}

fn split(token: &str) -> Result<Parts<'_>, VerifyError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::TooLarge);
    }
    let mut it = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(VerifyError::Malformed("a JWS has three parts"));
    };
    // The header first, so that `alg: none` is named as such even when its
    // signature is empty. A Latchkey header is about 100 bytes: decode it
    // on the stack.
    let mut buf = [0u8; HEADER_BUF_BYTES];
    let mut heap = Vec::new();
    let header = parse_header(decode_part_into(header, &mut buf, &mut heap)?)?;
    if payload.is_empty() || signature.is_empty() {
        return Err(VerifyError::Malformed("empty part"));
    }
    let signing_input = &token[..token.len() - signature.len() - 1];
    Ok(Parts {
        header,
        signing_input,
        payload,
        signature,
    })
}

/// Strict base64url: the URL-safe alphabet, no padding, no stray bits.
fn decode_part(part: &str) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed("not base64url"))
}

/// The stack buffer for a decoded signature: an RSA-8192 signature fits.
const SIGNATURE_BUF_BYTES: usize = 1024;

/// The stack buffer for a decoded header.
const HEADER_BUF_BYTES: usize = 512;

/// [`decode_part`] into `buf` when the result fits (no allocation), else
/// into `heap`. Equally strict.
fn decode_part_into<'b>(
    part: &str,
    buf: &'b mut [u8],
    heap: &'b mut Vec<u8>,
) -> Result<&'b [u8], VerifyError> {
    // The decoder wants room for whole 3-byte groups.
    if part.len().div_ceil(4) * 3 <= buf.len() {
        let n = URL_SAFE_NO_PAD
            .decode_slice(part, buf)
            .map_err(|_| VerifyError::Malformed("not base64url"))?;
        Ok(&buf[..n])
    } else {
        *heap = decode_part(part)?;
        Ok(heap)
    }
}

/// Parses and screens the protected header in one pass over its JSON,
/// without building a `serde_json::Value`. Any JSON the fast reader does
/// not accept (invalid, a duplicate key, not an object) goes to
/// [`parse_header_reference`], whose answer (an error) is the one given.
fn parse_header(bytes: &[u8]) -> Result<Header, VerifyError> {
    let Ok(members) = fast_from_json::<HeaderMembers<'_>>(bytes) else {
        return parse_header_reference(bytes);
    };
    let alg = match members.alg {
        Some(Member::Str(alg)) => alg,
        _ => return Err(VerifyError::Malformed("header has no alg")),
    };
    // Refuse `none`, HMAC and everything else before looking at keys: the
    // accepted set is closed.
    let alg = match &*alg {
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        "RS256" => Algorithm::RS256,
        _ => return Err(VerifyError::UnsupportedAlgorithm(alg.into_owned())),
    };
    if members.crit {
        return Err(VerifyError::CriticalHeader);
    }
    let kid = match members.kid {
        Some(Member::Str(kid)) if !kid.is_empty() => kid,
        None => Cow::Borrowed(""),
        _ => return Err(VerifyError::Malformed("kid is not a non-empty string")),
    };
    // Latchkey kids are 43-character thumbprints; a long one is junk, and
    // it would otherwise travel into errors and logs.
    if kid.len() > MAX_KID_BYTES {
        return Err(VerifyError::Malformed("kid is too long"));
    }
    let typ_is_access_token = match members.typ {
        None => false,
        Some(Member::Str(typ)) => is_access_token_typ(&typ),
        Some(Member::Other) => return Err(VerifyError::Malformed("typ is not a string")),
    };
    Ok(Header {
        alg,
        kid: kid.into_owned(),
        typ_is_access_token,
    })
}

/// The header screening on a `serde_json::Value`: the reference the fast
/// [`parse_header`] must agree with, and the source of its error messages.
fn parse_header_reference(bytes: &[u8]) -> Result<Header, VerifyError> {
    let Value::Object(header) = strict_json(bytes)? else {
        return Err(VerifyError::Malformed("header is not a JSON object"));
    };
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg,
        _ => return Err(VerifyError::Malformed("header has no alg")),
    };
    // Refuse `none`, HMAC and everything else before looking at keys: the
    // accepted set is closed.
    let alg = match alg.as_str() {
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        "RS256" => Algorithm::RS256,
        _ => return Err(VerifyError::UnsupportedAlgorithm(alg.clone())),
    };
    if header.contains_key("crit") {
        return Err(VerifyError::CriticalHeader);
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        None => String::new(),
        _ => return Err(VerifyError::Malformed("kid is not a non-empty string")),
    };
    // Latchkey kids are 43-character thumbprints; a long one is junk, and
    // it would otherwise travel into errors and logs.
    if kid.len() > MAX_KID_BYTES {
        return Err(VerifyError::Malformed("kid is too long"));
    }
    let typ_is_access_token = match header.get("typ") {
        None => false,
        Some(Value::String(typ)) => is_access_token_typ(typ),
        Some(_) => return Err(VerifyError::Malformed("typ is not a string")),
    };
    Ok(Header {
        alg,
        kid,
        typ_is_access_token,
    })
}

/// Parses the payload into the claims of an access token in one pass,
/// refusing duplicate keys at any depth, without an intermediate
/// `serde_json::Value`. When the fast reader refuses the payload (bad JSON,
/// a duplicate, a missing or mistyped claim), [`parse_claims_reference`]
/// decides, so errors are exactly the reference's; the fast reader accepts
/// nothing the reference refuses (see the differential tests).
fn parse_claims(payload: &[u8]) -> Result<AccessTokenClaims, VerifyError> {
    match fast_from_json::<StrictClaims>(payload) {
        Ok(StrictClaims(claims)) => Ok(claims),
        Err(_) => parse_claims_reference(payload),
    }
}

/// The claims through a `serde_json::Value`: duplicate keys and bad JSON
/// are [`VerifyError::Malformed`], a payload without the claims of an
/// access token is [`VerifyError::InvalidClaims`].
fn parse_claims_reference(payload: &[u8]) -> Result<AccessTokenClaims, VerifyError> {
    let value = strict_json(payload)?;
    serde_json::from_value(value).map_err(|e| VerifyError::InvalidClaims(e.to_string()))
}

fn check_claims(
    header: &Header,
    claims: &AccessTokenClaims,
    exp: &Expectations,
    now: i64,
) -> Result<(), VerifyError> {
    if exp.require_typ && !header.typ_is_access_token {
        return Err(VerifyError::WrongType);
    }
    if claims.iss != exp.issuer {
        return Err(VerifyError::WrongIssuer);
    }
    if claims.mode != exp.mode {
        return Err(VerifyError::WrongMode);
    }
    if let Some(audience) = &exp.audience {
        if !claims.aud.contains(audience) {
            return Err(VerifyError::WrongAudience);
        }
    }
    let leeway = i64::try_from(exp.leeway_seconds).unwrap_or(i64::MAX);
    // RFC 7519 §4.1.4: the token must not be accepted on or after `exp`.
    if now >= claims.exp.saturating_add(leeway) {
        return Err(VerifyError::Expired);
    }
    if now.saturating_add(leeway) < claims.nbf {
        return Err(VerifyError::NotYetValid);
    }
    if now.saturating_add(leeway) < claims.iat {
        return Err(VerifyError::IssuedInFuture);
    }
    Ok(())
}

/// RFC 8725 §3.11 and RFC 9068 §2.1: `at+jwt`, case-insensitively, with or
/// without the `application/` prefix.
fn is_access_token_typ(typ: &str) -> bool {
    // `get` rather than slicing: byte 12 may fall inside a UTF-8 character.
    let typ = match (typ.get(..12), typ.get(12..)) {
        (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
        _ => typ,
    };
    typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
}

/// Parses JSON, refusing duplicate object keys at any depth. Two `sub` or
/// `alg` members are read differently by different parsers, which is how
/// token-confusion attacks begin, so such a token is refused outright.
fn strict_json(bytes: &[u8]) -> Result<Value, VerifyError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut de)
        .map_err(|_| VerifyError::Malformed("invalid JSON or duplicate key"))?
        .0;
    de.end()
        .map_err(|_| VerifyError::Malformed("trailing data after JSON"))?;
    Ok(value)
}

/// A `serde_json::Value` whose maps refuse duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// `T` from the whole of `bytes`, nothing after it but whitespace. The
/// bytes are checked to be UTF-8 once, up front, so that serde_json reads a
/// `str` and need not check each string again (JSON outside strings is
/// ASCII, so this refuses exactly what reading the bytes would). The
/// error says nothing: callers fall back to a reference reader for it.
fn fast_from_json<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ()> {
    let text = std::str::from_utf8(bytes).map_err(|_| ())?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(&mut de).map_err(|_| ())?;
    de.end().map_err(|_| ())?;
    Ok(value)
}

fn duplicate<E: de::Error>() -> E {
    E::custom("duplicate key")
}

/// Fills a claim's slot, refusing a second value.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(duplicate());
    }
    *slot = Some(value);
    Ok(())
}

/// Refuses a repeated key among `keys` (sorted in place): O(n log n) even
/// for a 16 KiB object of one-letter keys.
fn refuse_duplicate_keys<E: de::Error>(keys: &mut [Cow<'_, str>]) -> Result<(), E> {
    if keys.len() > 1 {
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(duplicate());
        }
    }
    Ok(())
}

/// An object key, borrowed from the input unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value, read strictly (duplicate keys refused at any depth) and
/// kept only when it is a string.
enum Member<'de> {
    Str(Cow<'de, str>),
    Other,
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_unit<E>(self) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member<'de>, A::Error> {
        while seq.next_element::<Member<'de>>()?.is_some() {}
        Ok(Member::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<'de>, A::Error> {
        let mut keys = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            map.next_value::<Member<'de>>()?;
            keys.push(key);
        }
        refuse_duplicate_keys(&mut keys)?;
        Ok(Member::Other)
    }
}

/// The header members we read; the rest are read strictly and dropped.
#[derive(Default)]
struct HeaderMembers<'de> {
    alg: Option<Member<'de>>,
    kid: Option<Member<'de>>,
    typ: Option<Member<'de>>,
    crit: bool,
}

impl<'de> Deserialize<'de> for HeaderMembers<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = HeaderMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JOSE header")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut header = HeaderMembers::default();
                let mut keys = Vec::new();
                while let Some(Key(key)) = map.next_key()? {
                    let value: Member<'de> = map.next_value()?;
                    match &*key {
                        "alg" => header.alg = Some(value),
                        "kid" => header.kid = Some(value),
                        "typ" => header.typ = Some(value),
                        "crit" => header.crit = true,
                        _ => {}
                    }
                    keys.push(key);
                }
                refuse_duplicate_keys(&mut keys)?;
                Ok(header)
            }
        }
        d.deserialize_map(HeaderVisitor)
    }
}

/// The claims of an access token read straight from JSON, with duplicate
/// keys refused at every depth. Mirrors the derived `Deserialize` of
/// [`AccessTokenClaims`] (its flattened `custom` takes every other member)
/// without the buffering `#[serde(flatten)]` costs.
struct StrictClaims(AccessTokenClaims);

impl<'de> Deserialize<'de> for StrictClaims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ClaimsVisitor).map(StrictClaims)
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = AccessTokenClaims;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the claims of an access token")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AccessTokenClaims, A::Error> {
        let mut iss: Option<String> = None;
        let mut sub: Option<String> = None;
        let mut aud: Option<Audience> = None;
        let mut exp: Option<i64> = None;
        let mut iat: Option<i64> = None;
        let mut nbf: Option<i64> = None;
        let mut jti: Option<String> = None;
        let mut client_id: Option<String> = None;
        let mut scope: Option<Option<String>> = None;
        let mut mode: Option<Mode> = None;
        let mut tenant_id: Option<String> = None;
        let mut user_id: Option<String> = None;
        let mut kind: Option<UserKind> = None;
        let mut authorization: Option<Authorization> = None;
        let mut authorization_truncated: Option<bool> = None;
        let mut sid: Option<String> = None;
        let mut amr: Option<Vec<String>> = None;
        let mut auth_time: Option<i64> = None;
        let mut act: Option<Actor> = None;
        let mut custom = JsonObject::new();
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                claim::ISS => set_once(&mut iss, map.next_value()?)?,
                claim::SUB => set_once(&mut sub, map.next_value()?)?,
                claim::AUD => set_once(&mut aud, map.next_value()?)?,
                claim::EXP => set_once(&mut exp, map.next_value()?)?,
                claim::IAT => set_once(&mut iat, map.next_value()?)?,
                claim::NBF => set_once(&mut nbf, map.next_value()?)?,
                claim::JTI => set_once(&mut jti, map.next_value()?)?,
                claim::CLIENT_ID => set_once(&mut client_id, map.next_value()?)?,
                claim::SCOPE => set_once(&mut scope, map.next_value()?)?,
                claim::MODE => set_once(&mut mode, map.next_value()?)?,
                claim::TENANT_ID => set_once(&mut tenant_id, map.next_value()?)?,
                claim::USER_ID => set_once(&mut user_id, map.next_value()?)?,
                claim::KIND => set_once(&mut kind, map.next_value()?)?,
                claim::AUTHORIZATION => set_once(
                    &mut authorization,
                    map.next_value::<StrictAuthorization>()?.0,
                )?,
                claim::AUTHORIZATION_TRUNCATED => {
                    set_once(&mut authorization_truncated, map.next_value()?)?
                }
                claim::SID => set_once(&mut sid, map.next_value()?)?,
                claim::AMR => set_once(&mut amr, map.next_value()?)?,
                claim::AUTH_TIME => set_once(&mut auth_time, map.next_value()?)?,
                claim::ACT => set_once(&mut act, map.next_value()?)?,
                _ => {
                    if custom.contains_key(&*key) {
                        return Err(duplicate());
                    }
                    let StrictValue(value) = map.next_value()?;
                    custom.insert(key.into_owned(), value);
                }
            }
        }
        fn required<T, E: de::Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
            slot.ok_or_else(|| E::missing_field(name))
        }
        Ok(AccessTokenClaims {
            iss: required(iss, claim::ISS)?,
            sub: required(sub, claim::SUB)?,
            aud: required(aud, claim::AUD)?,
            exp: required(exp, claim::EXP)?,
            iat: required(iat, claim::IAT)?,
            nbf: required(nbf, claim::NBF)?,
            jti: required(jti, claim::JTI)?,
            client_id: required(client_id, claim::CLIENT_ID)?,
            scope: scope.flatten(),
            mode: required(mode, claim::MODE)?,
            tenant_id: required(tenant_id, claim::TENANT_ID)?,
            user_id: required(user_id, claim::USER_ID)?,
            kind: required(kind, claim::KIND)?,
            authorization: required(authorization, claim::AUTHORIZATION)?,
            authorization_truncated: authorization_truncated.unwrap_or(false),
            sid,
            amr,
            auth_time,
            act,
            custom,
        })
    }
}

/// The `authorization` claim, refusing a repeated tenant and duplicate keys
/// inside each entry.
struct StrictAuthorization(Authorization);

impl<'de> Deserialize<'de> for StrictAuthorization {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AuthorizationVisitor;
        impl<'de> Visitor<'de> for AuthorizationVisitor {
            type Value = Authorization;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of tenant to roles")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Authorization, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(tenant) = map.next_key::<String>()? {
                    if out.contains_key(&tenant) {
                        return Err(duplicate());
                    }
                    let StrictTenantRoles(roles) = map.next_value()?;
                    out.insert(tenant, roles);
                }
                Ok(out)
            }
        }
        d.deserialize_map(AuthorizationVisitor)
            .map(StrictAuthorization)
    }
}

/// [`TenantRoles`] as its derived `Deserialize` reads it (an object with
/// `roles`, other members ignored, or a one-element array), but with the
/// ignored members read strictly.
struct StrictTenantRoles(TenantRoles);

impl<'de> Deserialize<'de> for StrictTenantRoles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RolesVisitor;
        impl<'de> Visitor<'de> for RolesVisitor {
            type Value = TenantRoles;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("struct TenantRoles")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TenantRoles, A::Error> {
                let mut roles: Option<Vec<String>> = None;
                let mut others = Vec::new();
                while let Some(Key(key)) = map.next_key()? {
                    if key == "roles" {
                        set_once(&mut roles, map.next_value()?)?;
                    } else {
                        map.next_value::<Member<'de>>()?;
                        others.push(key);
                    }
                }
                refuse_duplicate_keys(&mut others)?;
                let roles = roles.ok_or_else(|| de::Error::missing_field("roles"))?;
                Ok(TenantRoles { roles })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TenantRoles, A::Error> {
                let roles = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                // A second element is an error, as for the derived impl.
                if seq.next_element::<Member<'de>>()?.is_some() {
                    return Err(de::Error::invalid_length(2, &self));
                }
                Ok(TenantRoles { roles })
            }
        }
        d.deserialize_any(RolesVisitor).map(StrictTenantRoles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{jwk_set, sample_claims, TestKey, NOW};
    use serde_json::json;

    const ISSUER: &str = "https://auth.example";

    fn expectations() -> Expectations {
        Expectations::new(ISSUER).audience("https://api.example")
    }

    fn keys(list: &[&TestKey]) -> KeySet {
        KeySet::from_jwks(&jwk_set(list)).unwrap()
    }

    fn verify(token: &str, key: &TestKey) -> Result<Claims, VerifyError> {
        verify_jwt(token, &keys(&[key]), &expectations(), NOW)
    }

    fn with_claims(edit: impl FnOnce(&mut Value)) -> Value {
        let mut claims = sample_claims(NOW);
        edit(&mut claims);
        claims
    }

    #[test]
    fn a_valid_token_verifies_with_each_algorithm() {
        for key in [
            TestKey::ed25519("k1"),
            TestKey::es256("k1"),
            TestKey::rs256("k1"),
        ] {
            let token = key.token(&sample_claims(NOW));
            let claims = verify(&token, &key).unwrap_or_else(|e| panic!("{}: {e}", key.jwk.alg));
            assert_eq!(claims.user_id(), "usr_abc");
            assert!(claims.has_role("acme", "operator"));
        }
    }

    #[test]
    fn a_token_verifies_among_several_keys_by_its_kid() {
        let a = TestKey::ed25519("a");
        let b = TestKey::es256("b");
        let set = keys(&[&a, &b]);
        let token = b.token(&sample_claims(NOW));
        assert!(verify_jwt(&token, &set, &expectations(), NOW).is_ok());
    }

    #[test]
    fn an_expired_token_is_refused_after_the_leeway() {
        let key = TestKey::ed25519("k");
        let claims = with_claims(|c| c["exp"] = json!(NOW - 31));
        assert_eq!(verify(&key.token(&claims), &key), Err(VerifyError::Expired));
        // Within the leeway it still passes; exactly at exp + leeway it fails.
        let claims = with_claims(|c| c["exp"] = json!(NOW - 29));
        assert!(verify(&key.token(&claims), &key).is_ok());
        let claims = with_claims(|c| c["exp"] = json!(NOW - 30));
        assert_eq!(verify(&key.token(&claims), &key), Err(VerifyError::Expired));
        let strict = expectations().leeway_seconds(0);
        let claims = with_claims(|c| c["exp"] = json!(NOW));
        assert_eq!(
            verify_jwt(&key.token(&claims), &keys(&[&key]), &strict, NOW),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn a_token_whose_nbf_is_in_the_future_is_not_valid_yet() {
        let key = TestKey::ed25519("k");
        let claims = with_claims(|c| c["nbf"] = json!(NOW + 120));
        assert_eq!(
            verify(&key.token(&claims), &key),
            Err(VerifyError::NotYetValid)
        );
        let claims = with_claims(|c| c["nbf"] = json!(NOW + 20));
        assert!(verify(&key.token(&claims), &key).is_ok());
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused() {
        let key = TestKey::ed25519("k");
        let claims = with_claims(|c| c["iat"] = json!(NOW + 3600));
        assert_eq!(
            verify(&key.token(&claims), &key),
            Err(VerifyError::IssuedInFuture)
        );
    }

    #[test]
    fn wrong_issuer_audience_and_mode_are_refused() {
        let key = TestKey::ed25519("k");
        let claims = with_claims(|c| c["iss"] = json!("https://evil.example"));
        assert_eq!(
            verify(&key.token(&claims), &key),
            Err(VerifyError::WrongIssuer)
        );
        let claims = with_claims(|c| c["aud"] = json!("https://other.example"));
        assert_eq!(
            verify(&key.token(&claims), &key),
            Err(VerifyError::WrongAudience)
        );
        let claims = with_claims(|c| c["mode"] = json!("test"));
        assert_eq!(
            verify(&key.token(&claims), &key),
            Err(VerifyError::WrongMode)
        );
        // A test-mode verifier refuses live tokens in turn.
        let test = expectations().mode(Mode::Test);
        assert_eq!(
            verify_jwt(&key.token(&sample_claims(NOW)), &keys(&[&key]), &test, NOW),
            Err(VerifyError::WrongMode)
        );
    }

    #[test]
    fn an_audience_list_is_searched_and_no_expected_audience_checks_nothing() {
        let key = TestKey::ed25519("k");
        let claims =
            with_claims(|c| c["aud"] = json!(["https://other.example", "https://api.example"]));
        assert!(verify(&key.token(&claims), &key).is_ok());
        let claims = with_claims(|c| c["aud"] = json!(["https://other.example"]));
        assert_eq!(
            verify(&key.token(&claims), &key),
            Err(VerifyError::WrongAudience)
        );
        let any = Expectations::new(ISSUER);
        assert!(verify_jwt(&key.token(&claims), &keys(&[&key]), &any, NOW).is_ok());
    }

    #[test]
    fn the_typ_header_must_be_at_jwt() {
        let key = TestKey::ed25519("k");
        let claims = sample_claims(NOW);
        for typ in [json!("JWT"), json!("id_token+jwt"), Value::Null] {
            let mut header = key.header();
            if typ.is_null() {
                header.as_object_mut().unwrap().remove("typ");
            } else {
                header["typ"] = typ;
            }
            let token = key.token_with(&header.to_string(), &claims.to_string());
            assert_eq!(verify(&token, &key), Err(VerifyError::WrongType));
        }
        for typ in ["application/at+jwt", "AT+JWT"] {
            let mut header = key.header();
            header["typ"] = json!(typ);
            let token = key.token_with(&header.to_string(), &claims.to_string());
            assert!(verify(&token, &key).is_ok(), "{typ}");
        }
        let mut header = key.header();
        header["typ"] = json!("JWT");
        let token = key.token_with(&header.to_string(), &claims.to_string());
        let lax = Expectations {
            require_typ: false,
            ..expectations()
        };
        assert!(verify_jwt(&token, &keys(&[&key]), &lax, NOW).is_ok());
    }

    #[test]
    fn a_flipped_bit_anywhere_breaks_the_signature() {
        let key = TestKey::ed25519("k");
        let token = key.token(&sample_claims(NOW));
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[10] ^= 1;
        let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(verify(&tampered, &key), Err(VerifyError::BadSignature));

        // A payload changed after signing (a role added) fails the same way.
        let (header, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = with_claims(|c| c["authorization"]["acme"]["roles"] = json!(["admin"]));
        let forged = format!(
            "{header}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(forged.to_string())
        );
        assert_eq!(verify(&forged, &key), Err(VerifyError::BadSignature));
    }

    #[test]
    fn a_token_from_a_different_key_with_the_same_kid_fails() {
        let key = TestKey::ed25519("k");
        let impostor = TestKey::ed25519("k");
        let token = impostor.token(&sample_claims(NOW));
        assert_eq!(verify(&token, &key), Err(VerifyError::BadSignature));
    }

    #[test]
    fn alg_none_is_refused() {
        let key = TestKey::ed25519("k");
        let header = json!({"alg": "none", "kid": "k", "typ": "at+jwt"});
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(sample_claims(NOW).to_string())
        );
        assert_eq!(
            verify(&token, &key),
            Err(VerifyError::UnsupportedAlgorithm("none".into()))
        );
        let token = format!("{token}AAAA");
        assert_eq!(
            verify(&token, &key),
            Err(VerifyError::UnsupportedAlgorithm("none".into()))
        );
        for alg in ["None", "NONE", ""] {
            let header = json!({"alg": alg, "kid": "k", "typ": "at+jwt"});
            let token = key.token_with(&header.to_string(), &sample_claims(NOW).to_string());
            assert!(matches!(
                verify(&token, &key),
                Err(VerifyError::UnsupportedAlgorithm(_))
            ));
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_as_secret_is_refused() {
        use aws_lc_rs::hmac;
        for key in [TestKey::rs256("k"), TestKey::ed25519("k")] {
            // The classic confusion attack: HMAC keyed with the public key
            // bytes a verifier might hand to a generic `verify(alg, key)`.
            let header = json!({"alg": "HS256", "kid": "k", "typ": "at+jwt"});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(sample_claims(NOW).to_string())
            );
            for secret in [
                serde_json::to_vec(&key.jwk).unwrap(),
                key.public_key_bytes(),
            ] {
                let mac = hmac::sign(
                    &hmac::Key::new(hmac::HMAC_SHA256, &secret),
                    input.as_bytes(),
                );
                let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
                assert_eq!(
                    verify(&token, &key),
                    Err(VerifyError::UnsupportedAlgorithm("HS256".into()))
                );
            }
        }
    }

    #[test]
    fn a_header_alg_different_from_the_jwk_alg_is_refused() {
        // An ES256 key, and a token that claims RS256 (or EdDSA) for it.
        let ec = TestKey::es256("k");
        for alg in ["RS256", "EdDSA"] {
            let mut header = ec.header();
            header["alg"] = json!(alg);
            let token = ec.token_with(&header.to_string(), &sample_claims(NOW).to_string());
            assert_eq!(
                verify(&token, &ec),
                Err(VerifyError::AlgorithmMismatch {
                    header: alg.into(),
                    key: "ES256".into()
                })
            );
        }
        // An RSA-signed token that names an Ed25519 key's kid.
        let ed = TestKey::ed25519("k");
        let rsa = TestKey::rs256("k");
        let token = rsa.token(&sample_claims(NOW));
        assert!(matches!(
            verify(&token, &ed),
            Err(VerifyError::AlgorithmMismatch { .. })
        ));
    }

    #[test]
    fn an_unknown_kid_is_reported_by_name() {
        let key = TestKey::ed25519("k");
        let other = TestKey::ed25519("rotated");
        let token = other.token(&sample_claims(NOW));
        assert_eq!(
            verify(&token, &key),
            Err(VerifyError::UnknownKid("rotated".into()))
        );
        assert_eq!(peek_kid(&token).unwrap(), "rotated");
        let mut header = key.header();
        header["kid"] = json!("k".repeat(MAX_KID_BYTES + 1));
        let token = key.token_with(&header.to_string(), &sample_claims(NOW).to_string());
        assert_eq!(
            verify(&token, &key),
            Err(VerifyError::Malformed("kid is too long"))
        );
        let mut header = key.header();
        header.as_object_mut().unwrap().remove("kid");
        let token = key.token_with(&header.to_string(), &sample_claims(NOW).to_string());
        assert_eq!(
            verify(&token, &key),
            Err(VerifyError::Malformed("header has no kid"))
        );
    }

    #[test]
    fn a_crit_header_is_refused() {
        let key = TestKey::ed25519("k");
        let mut header = key.header();
        header["crit"] = json!(["b64"]);
        header["b64"] = json!(false);
        let token = key.token_with(&header.to_string(), &sample_claims(NOW).to_string());
        assert_eq!(verify(&token, &key), Err(VerifyError::CriticalHeader));
    }

    #[test]
    fn jku_x5u_and_jwk_headers_are_ignored() {
        // A token signed by an attacker who points at their own key must
        // fail: only the key set is consulted.
        let key = TestKey::ed25519("k");
        let attacker = TestKey::ed25519("k");
        let mut header = attacker.header();
        header["jku"] = json!("https://evil.example/jwks.json");
        header["x5u"] = json!("https://evil.example/cert.pem");
        header["jwk"] = serde_json::to_value(&attacker.jwk).unwrap();
        let token = attacker.token_with(&header.to_string(), &sample_claims(NOW).to_string());
        assert_eq!(verify(&token, &key), Err(VerifyError::BadSignature));
        // And the same headers on a genuine token change nothing.
        let token = key.token_with(&header.to_string(), &sample_claims(NOW).to_string());
        assert!(verify(&token, &key).is_ok());
    }

    #[test]
    fn an_oversized_token_is_refused_before_parsing() {
        let key = TestKey::ed25519("k");
        let claims = with_claims(|c| c["padding"] = json!("x".repeat(MAX_TOKEN_BYTES)));
        let token = key.token(&claims);
        assert_eq!(verify(&token, &key), Err(VerifyError::TooLarge));
        assert_eq!(
            verify(&"a".repeat(MAX_TOKEN_BYTES + 1), &key),
            Err(VerifyError::TooLarge)
        );
    }

    #[test]
    fn truncated_and_malformed_tokens_are_malformed() {
        let key = TestKey::ed25519("k");
        let token = key.token(&sample_claims(NOW));
        let two_parts = &token[..token.rfind('.').unwrap()];
        for bad in [
            "",
            ".",
            "..",
            "a.b",
            two_parts,
            &format!("{token}.extra"),
            &format!("{}.{}", two_parts, "!!!!"),
            // Padding and the standard alphabet are not base64url.
            &format!("{token}=="),
            &token.replacen('.', "+.", 1),
        ] {
            assert!(
                matches!(verify(bad, &key), Err(VerifyError::Malformed(_))),
                "{bad:?}: {:?}",
                verify(bad, &key)
            );
        }
        // Cut inside the signature: still base64url, but the signature is
        // short and does not verify (or, at a bad length, does not decode).
        let cut = &token[..token.len() - 5];
        assert!(matches!(
            verify(cut, &key),
            Err(VerifyError::BadSignature | VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn non_canonical_base64_with_stray_bits_is_refused() {
        let key = TestKey::ed25519("k");
        let token = key.token(&sample_claims(NOW));
        // An Ed25519 signature is 64 bytes: 86 characters whose last one
        // carries 2 unused bits. Setting them gives the same bytes from a
        // different string, which a strict decoder refuses.
        let (input, sig) = token.rsplit_once('.').unwrap();
        let last = sig.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        let sloppy = alphabet.chars().nth(idx | 1).unwrap();
        assert_ne!(sloppy, last);
        let token = format!("{input}.{}{sloppy}", &sig[..sig.len() - 1]);
        assert_eq!(
            verify(&token, &key),
            Err(VerifyError::Malformed("not base64url"))
        );
    }

    #[test]
    fn duplicate_json_keys_are_refused_in_header_and_payload() {
        let key = TestKey::ed25519("k");
        let header = r#"{"alg":"EdDSA","kid":"k","typ":"at+jwt","kid":"other"}"#;
        let token = key.token_with(header, &sample_claims(NOW).to_string());
        assert!(matches!(
            verify(&token, &key),
            Err(VerifyError::Malformed(_))
        ));

        let payload = sample_claims(NOW).to_string();
        let payload = format!(r#"{{"sub":"usr_evil",{}"#, &payload[1..]);
        let token = key.token_with(&key.header().to_string(), &payload);
        assert!(matches!(
            verify(&token, &key),
            Err(VerifyError::Malformed(_))
        ));

        // Nested duplicates too.
        let payload = sample_claims(NOW).to_string().replace(
            r#""acme":{"roles":["operator"]}"#,
            r#""acme":{"roles":["operator"],"roles":["admin"]}"#,
        );
        assert!(payload.contains(r#""roles":["admin"]"#));
        let token = key.token_with(&key.header().to_string(), &payload);
        assert!(matches!(
            verify(&token, &key),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn a_truncated_authorization_claim_is_reported_and_read_strictly() {
        let key = TestKey::ed25519("k");
        let complete = verify(&key.token(&sample_claims(NOW)), &key).unwrap();
        assert!(complete.authorization_is_complete());
        let claims = with_claims(|c| c["authorizationTruncated"] = json!(true));
        let cut = verify(&key.token(&claims), &key).unwrap();
        assert!(!cut.authorization_is_complete());
        assert!(cut.has_role("acme", "operator"));
        assert_eq!(
            cut.custom("authorizationTruncated"),
            None,
            "a claim, not custom"
        );
        // Not a boolean, or said twice: refused.
        let claims = with_claims(|c| c["authorizationTruncated"] = json!("yes"));
        assert!(matches!(
            verify(&key.token(&claims), &key),
            Err(VerifyError::InvalidClaims(_))
        ));
        let payload = format!(
            r#"{{"authorizationTruncated":false,"authorizationTruncated":true,{}"#,
            &sample_claims(NOW).to_string()[1..]
        );
        let token = key.token_with(&key.header().to_string(), &payload);
        assert!(matches!(
            verify(&token, &key),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn a_signed_payload_without_latchkey_claims_is_invalid() {
        let key = TestKey::ed25519("k");
        let token = key.token(&json!({"iss": ISSUER, "sub": "x", "exp": NOW + 60}));
        assert!(matches!(
            verify(&token, &key),
            Err(VerifyError::InvalidClaims(_))
        ));
        let token = key.token(&json!([1, 2, 3]));
        assert!(matches!(
            verify(&token, &key),
            Err(VerifyError::InvalidClaims(_))
        ));
    }

    /// The one-pass claims reader must accept exactly what the reference
    /// (strict `Value`, then the derived `Deserialize`) accepts, with the
    /// same claims.
    #[test]
    fn the_fast_claims_reader_agrees_with_the_reference() {
        let base = sample_claims(NOW).to_string();
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut c = sample_claims(NOW);
            f(&mut c);
            c.to_string()
        };
        let mut cases = vec![
            base.clone(),
            edit(&|c| c["aud"] = json!(["a", "https://api.example"])),
            edit(&|c| c["aud"] = json!([])),
            edit(&|c| c["aud"] = json!(7)),
            edit(&|c| c["aud"] = json!([{"a": 1}])),
            edit(&|c| c["scope"] = Value::Null),
            edit(&|c| {
                c.as_object_mut().unwrap().remove("scope");
            }),
            edit(&|c| c["scope"] = json!(5)),
            edit(&|c| c["exp"] = json!(1.8e9)),
            edit(&|c| c["exp"] = json!(u64::MAX)),
            edit(&|c| c["exp"] = json!("1800000000")),
            edit(&|c| c["iat"] = json!(-5)),
            edit(&|c| c["mode"] = json!("LIVE")),
            edit(&|c| c["mode"] = json!({"live": null})),
            edit(&|c| c["mode"] = json!({"live": 1})),
            edit(&|c| c["kind"] = json!("human")),
            edit(&|c| c["kind"] = json!("robot")),
            edit(&|c| c["authorization"] = json!({})),
            edit(&|c| c["authorization"] = json!([])),
            edit(&|c| c["authorization"]["acme"] = json!({"roles": []})),
            edit(&|c| c["authorization"]["acme"] = json!({})),
            edit(&|c| c["authorization"]["acme"] = json!([["operator"]])),
            edit(&|c| c["authorization"]["acme"] = json!([["operator"], 1])),
            edit(&|c| c["authorization"]["acme"] = json!([])),
            edit(&|c| c["authorization"]["acme"] = json!({"roles": ["a"], "x": {"y": [1]}})),
            edit(&|c| c["authorization"]["acme"] = json!({"roles": [1]})),
            edit(&|c| c["authorization"]["acme"] = json!({"roles": "operator"})),
            edit(&|c| c["authorization"]["acme"] = json!(null)),
            edit(&|c| c["region"] = json!({"a": [1, {"b": null}], "c": 1.5})),
            edit(&|c| c["tenant_id"] = json!("other")),
            edit(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            edit(&|c| {
                c.as_object_mut().unwrap().remove("authorization");
            }),
            edit(&|c| c["sub"] = Value::Null),
            "[]".into(),
            "{}".into(),
            "null".into(),
            "".into(),
            format!("{base} "),
            format!("{base} x"),
            format!("{base}{{}}"),
        ];
        // Duplicates at each depth, and keys spelt with escapes.
        for (from, to) in [
            (
                r#""sub":"usr_abc","#,
                r#""sub":"usr_abc","sub":"usr_evil","#,
            ),
            (r#""region":"eu""#, r#""region":"eu","region":"us""#),
            (r#""region":"eu""#, r#""region":"eu","\u0072egion":"us""#),
            (r#""sub":"usr_abc","#, r#""\u0073ub":"usr_abc","#),
            (r#""sub":"usr_abc","#, r#""sub":"usr_abc","\u0073ub":"x","#),
            (
                r#""acme":{"roles":["operator"]}"#,
                r#""acme":{"roles":["operator"]},"acme":{"roles":["admin"]}"#,
            ),
            (
                r#""acme":{"roles":["operator"]}"#,
                r#""acme":{"roles":["operator"],"roles":["admin"]}"#,
            ),
            (
                r#""acme":{"roles":["operator"]}"#,
                r#""acme":{"roles":["operator"],"x":1,"x":2}"#,
            ),
            (
                r#""acme":{"roles":["operator"]}"#,
                r#""acme":{"roles":["operator"],"x":{"y":1,"y":2}}"#,
            ),
            (r#""region":"eu""#, r#""region":{"a":[{"b":1,"b":1}]}"#),
            (r#""region":"eu""#, r#""region":"\u00e9\n""#),
            (r#""usr_abc""#, r#""usr_\u0061bc""#),
        ] {
            assert!(base.contains(from), "{from}");
            cases.push(base.replacen(from, to, 1));
        }
        for case in &cases {
            let fast = fast_from_json::<StrictClaims>(case.as_bytes()).map(|c| c.0);
            let reference = parse_claims_reference(case.as_bytes());
            match (&fast, &reference) {
                (Ok(f), Ok(r)) => assert_eq!(f, r, "{case}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{case}: fast {fast:?}, reference {reference:?}"),
            }
        }
    }

    /// The same for the header reader.
    #[test]
    fn the_fast_header_reader_agrees_with_the_reference() {
        let mut cases: Vec<String> = [
            json!({"alg": "EdDSA", "kid": "k", "typ": "at+jwt"}),
            json!({"alg": "ES256", "kid": "k"}),
            json!({"alg": "RS256", "typ": "application/AT+JWT"}),
            json!({"alg": "EdDSA", "kid": "k", "typ": "JWT"}),
            json!({"alg": "EdDSA", "kid": "k", "typ": 1}),
            json!({"alg": "EdDSA", "kid": "k", "typ": null}),
            json!({"alg": "EdDSA", "kid": ""}),
            json!({"alg": "EdDSA", "kid": 5}),
            json!({"alg": "EdDSA", "kid": null}),
            json!({"alg": "EdDSA", "kid": "k".repeat(MAX_KID_BYTES + 1)}),
            json!({"alg": "none", "kid": "k"}),
            json!({"alg": "HS256", "kid": "k"}),
            json!({"alg": ["EdDSA"], "kid": "k"}),
            json!({"kid": "k"}),
            json!({"alg": "EdDSA", "kid": "k", "crit": []}),
            json!({"alg": "EdDSA", "kid": "k", "crit": null}),
            json!({"alg": "EdDSA", "kid": "k", "jwk": {"kty": "OKP", "x": [1, {}]}}),
            json!([]),
            json!("EdDSA"),
        ]
        .iter()
        .map(Value::to_string)
        .collect();
        cases.extend(
            [
                r#"{"alg":"EdDSA","kid":"k","kid":"other"}"#,
                r#"{"alg":"EdDSA","kid":"k","kid":"other"}"#,
                r#"{"alg":"EdDSA","kid":"k"}"#,
                r#"{"alg":"EdDSA","kid":"k","x":{"a":1,"a":2}}"#,
                r#"{"alg":"EdDSA","kid":"k","x":[{"a":1,"a":2}]}"#,
                r#"{"alg":"EdDSA","kid":"k"} "#,
                r#"{"alg":"EdDSA","kid":"k"}{}"#,
                r#"{"alg":"EdDSA","kid":"k""#,
                "",
                "{}",
            ]
            .map(String::from),
        );
        for case in &cases {
            let fast = parse_header(case.as_bytes());
            let reference = parse_header_reference(case.as_bytes());
            let show = |h: &Result<Header, VerifyError>| {
                h.as_ref()
                    .map(|h| format!("{:?} {} {}", h.alg, h.kid, h.typ_is_access_token))
                    .map_err(Clone::clone)
            };
            assert_eq!(show(&fast), show(&reference), "{case}");
        }
    }

    #[test]
    fn a_header_that_is_not_an_object_is_malformed() {
        let key = TestKey::ed25519("k");
        for header in ["[]", "\"EdDSA\"", "{", "{}"] {
            let token = key.token_with(header, &sample_claims(NOW).to_string());
            assert!(
                matches!(verify(&token, &key), Err(VerifyError::Malformed(_))),
                "{header}"
            );
        }
    }
}
