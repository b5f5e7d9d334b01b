//! What a request presents, read once, early: [`RequestCredentials`]
//! (whether it came over TLS, its source address, its `Authorization`
//! header read with core's parser, `X-Api-Key`, and an OAuth endpoint's form
//! parsed once), and the `tls_required` rule on it: a request that did not
//! arrive over TLS (natively, or from a trusted proxy that says
//! `X-Forwarded-Proto: https`) is refused with 403 when it presents a
//! live-mode credential anywhere, before any handler checks, counts or even
//! parses that credential. The brute-force guard, the admin check and the
//! handlers read the same [`RequestCredentials`].

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use ipnet::IpNet;
use latchkey_core::oauth_form::{is_credential_parameter, AuthorizationHeader, Params};
use latchkey_core::Secret;
use serde::Deserialize;

use crate::app::MAX_BODY_BYTES;
use crate::http::error::{ApiError, OAuthError, OAuthErrorCode, TLS_REQUIRED_DETAIL};
use crate::http::tls::NativeTls;
use crate::state::AppState;

/// What a request presents and how it reached us, read once by
/// [`read_credentials`]. Handlers that learn a credential's mode only after
/// looking it up must refuse a live one themselves when `secure` is false.
#[derive(Debug, Clone)]
pub struct RequestCredentials {
    /// Over TLS, natively or through a trusted proxy.
    pub secure: bool,
    /// The client's address: the peer, or, when the peer is a trusted proxy,
    /// the nearest address in `X-Forwarded-For` that is not one. `None` only
    /// for requests that did not come over a socket (in-process tests).
    pub source: Option<IpAddr>,
    /// The `Authorization` header (the first), read once.
    pub authorization: AuthorizationHeader,
    /// The first `X-Api-Key`; `Err` when it is not visible ASCII text.
    pub api_key: Result<Option<Secret>, NotText>,
    /// An OAuth endpoint's form (`POST /oauth/…` with an urlencoded body
    /// within the body limit), parsed once. `None` otherwise: the handler's
    /// form extractor then reads the body and answers its errors.
    pub form: Option<Params>,
}

impl Default for RequestCredentials {
    fn default() -> Self {
        RequestCredentials {
            secure: false,
            source: None,
            authorization: AuthorizationHeader::default(),
            api_key: Ok(None),
            form: None,
        }
    }
}

impl RequestCredentials {
    /// The client id a request names: in `Authorization: Basic`, else the
    /// form's (first) `client_id`.
    pub fn client_id(&self) -> Option<&str> {
        match self.authorization.basic() {
            Ok(Some(basic)) => Some(basic.client_id.as_str()),
            _ => self.form.as_ref().and_then(|f| f.first("client_id")),
        }
    }
}

/// A header that should hold a credential is not visible ASCII text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotText;

/// The request's [`RequestCredentials`] (an empty one for a request that
/// did not pass the middleware, such as an in-process test's).
#[derive(Debug, Clone)]
pub struct Credentials(pub Arc<RequestCredentials>);

impl<S: Send + Sync> FromRequestParts<S> for Credentials {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Credentials(credentials_of(parts)))
    }
}

/// The credentials recorded on a request's parts.
pub fn credentials_of(parts: &Parts) -> Arc<RequestCredentials> {
    parts
        .extensions
        .get::<Arc<RequestCredentials>>()
        .cloned()
        .unwrap_or_default()
}

/// The prefix every live-mode credential starts with.
const LIVE_PREFIX: &str = "lk_live_";

/// The middleware: reads the [`RequestCredentials`] (an OAuth form is read
/// and parsed here, once) and refuses a live credential over a connection
/// that is not TLS.
pub async fn read_credentials(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let secure = request.extensions().get::<NativeTls>().is_some()
        || via_trusted_proxy(&request, &state.config.trusted_proxies);
    let (mut parts, mut body) = request.into_parts();
    let source = source_address(&parts, &state.config.trusted_proxies);
    let oauth = parts.uri.path().starts_with("/oauth/");
    let refuse = |parts: &Parts| {
        tracing::info!(
            path = parts.uri.path(),
            "refused a live credential over a connection that is not TLS"
        );
        if oauth {
            OAuthError::new(OAuthErrorCode::TlsRequired, TLS_REQUIRED_DETAIL).into_response()
        } else {
            ApiError::TlsRequired.into_response()
        }
    };
    if !secure && headers_carry_live_credential(&parts.headers) {
        return refuse(&parts);
    }
    let verify = parts.uri.path() == "/v1/api-keys/verify";
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A body declared over the limit is left for the handler to refuse (413)
    // unread.
    let within_limit = declared.is_none_or(|n| n <= MAX_BODY_BYTES as u64);
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let mut form = None;
    // These bodies may carry a credential: an OAuth form is read (within
    // the body limit) and parsed once for everyone; the verify body is read
    // when it must be searched for a live key. The same bytes go on to the
    // handler.
    let read_form = parts.method == Method::POST && oauth && is_form;
    let read_verify = parts.method == Method::POST && verify && !secure;
    if within_limit && (read_form || read_verify) {
        let bytes = match read_capped(body).await {
            Ok(bytes) => bytes,
            Err(()) => {
                let detail = "the request body could not be read";
                return if oauth {
                    OAuthError::new(OAuthErrorCode::InvalidRequest, detail).into_response()
                } else {
                    ApiError::InvalidRequest(detail.into()).into_response()
                };
            }
        };
        let fits = bytes.len() <= MAX_BODY_BYTES;
        if read_form && fits {
            state.metrics.form_parsed();
            form = Some(Params::parse(&bytes));
        }
        let live = if read_form {
            form.as_ref().is_some_and(params_carry_live_credential)
        } else {
            fits && json_carries_live_key(&bytes)
        };
        if !secure && live {
            return refuse(&parts);
        }
        body = Body::from(bytes);
    } else if !secure && oauth && parts.method == Method::POST && within_limit {
        // Another content type: the handler refuses it without reading a
        // credential, but a live one in it still must not pass unrefused.
        let bytes = match read_capped(body).await {
            Ok(bytes) => bytes,
            Err(()) => {
                return OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    "the request body could not be read",
                )
                .into_response()
            }
        };
        if bytes.len() <= MAX_BODY_BYTES && params_carry_live_credential(&Params::parse(&bytes)) {
            return refuse(&parts);
        }
        body = Body::from(bytes);
    }
    let credentials = RequestCredentials {
        secure,
        source,
        authorization: AuthorizationHeader::read(
            parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes()),
        ),
        api_key: parts
            .headers
            .get("x-api-key")
            .map(|v| {
                v.to_str()
                    .map(|v| Secret::new(v.to_owned()))
                    .map_err(|_| NotText)
            })
            .transpose(),
        form,
    };
    parts.extensions.insert(Arc::new(credentials));
    next.run(Request::from_parts(parts, body)).await
}

/// The client's address (see [`RequestCredentials::source`]). Proxies append the
/// address they received from, so the list is read from the right, skipping
/// trusted proxies; anything left of the first untrusted hop could be
/// forged by the client and is ignored.
fn source_address(parts: &axum::http::request::Parts, trusted: &[IpNet]) -> Option<IpAddr> {
    let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
    let mut ip = peer.ip().to_canonical();
    if !trusted.iter().any(|net| net.contains(&ip)) {
        return Some(ip);
    }
    // Right to left: the last header's last hop first.
    let hops = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','));
    for hop in hops {
        let Ok(hop) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        ip = hop.to_canonical();
        if !trusted.iter().any(|net| net.contains(&ip)) {
            break;
        }
    }
    Some(ip)
}

/// Whether the peer is a trusted proxy that says the client used https.
/// The header from any other peer is ignored: anyone can send it.
fn via_trusted_proxy(request: &Request, trusted: &[IpNet]) -> bool {
    if trusted.is_empty() {
        return false;
    }
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
        return false;
    };
    // An IPv4 client of a dual-stack socket shows up as ::ffff:a.b.c.d.
    let ip = peer.ip().to_canonical();
    if !trusted.iter().any(|net| net.contains(&ip)) {
        return false;
    }
    // Every value must say https: a proxy that appends to a client-supplied
    // header ("https, http") is not vouching for TLS.
    let mut values = request
        .headers()
        .get_all("x-forwarded-proto")
        .iter()
        .peekable();
    values.peek().is_some()
        && values.all(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .all(|proto| proto.trim().eq_ignore_ascii_case("https"))
            })
        })
}

/// `Authorization` (Bearer or Basic, read by core's parser) and
/// `X-Api-Key`, every occurrence.
fn headers_carry_live_credential(headers: &HeaderMap) -> bool {
    let authorization = headers.get_all(AUTHORIZATION).iter().any(|value| {
        let header = AuthorizationHeader::read(Some(value.as_bytes()));
        header.bearer().is_some_and(is_live)
            || matches!(header.basic(), Ok(Some(basic)) if is_live(basic.secret.expose()))
    });
    authorization
        || headers
            .get_all("x-api-key")
            .iter()
            .any(|v| v.to_str().is_ok_and(is_live))
}

/// A live key or secret (`lk_live_…`), or a JWT whose payload says
/// `"mode": "live"`. The signature is not checked: a forged or expired live
/// token crossed the network in clear all the same.
fn is_live(credential: &str) -> bool {
    let credential = credential.trim();
    credential.starts_with(LIVE_PREFIX) || jwt_mode_is_live(credential)
}

fn jwt_mode_is_live(token: &str) -> bool {
    #[derive(Deserialize)]
    struct ModeClaim<'a> {
        #[serde(borrow)]
        mode: Option<Cow<'a, str>>,
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(json) = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else {
        return false;
    };
    serde_json::from_slice::<ModeClaim>(&json)
        .ok()
        .and_then(|claims| claims.mode)
        .is_some_and(|mode| mode == "live")
}

/// A credential-carrying field of an OAuth form with a live value.
fn params_carry_live_credential(params: &Params) -> bool {
    params
        .pairs()
        .iter()
        .any(|(name, value)| is_credential_parameter(name) && is_live(value))
}

fn json_carries_live_key(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct KeyField<'a> {
        #[serde(borrow)]
        key: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<KeyField>(body)
        .ok()
        .and_then(|body| body.key)
        .is_some_and(|key| is_live(&key))
}

/// Reads the body until its end or just past the body limit. A body over
/// the limit comes back longer than the limit, so the handler still refuses
/// it exactly as it would have.
pub(crate) async fn read_capped(mut body: Body) -> Result<Bytes, ()> {
    let mut buffer = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
            if buffer.len() > MAX_BODY_BYTES {
                break;
            }
        }
    }
    Ok(Bytes::from(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn form_carries_live_credential(body: &[u8]) -> bool {
        params_carry_live_credential(&Params::parse(body))
    }
    use axum::http::HeaderValue;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn parts_from(peer: &str, forwarded: &[&str]) -> axum::http::request::Parts {
        let mut builder = Request::builder();
        for f in forwarded {
            builder = builder.header("x-forwarded-for", *f);
        }
        let (mut parts, _) = builder.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    #[test]
    fn the_source_address_is_the_peer_unless_a_trusted_proxy_forwarded_for_someone() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // An untrusted peer's header is ignored: anyone can send it.
        let p = parts_from("198.51.100.4:5000", &["203.0.113.9"]);
        assert_eq!(source_address(&p, &trusted), ip("198.51.100.4"));
        // Through a trusted proxy: the nearest untrusted hop, reading from
        // the right, so a client-supplied left part cannot be chosen.
        let p = parts_from("10.0.0.2:5000", &["1.2.3.4, 203.0.113.9"]);
        assert_eq!(source_address(&p, &trusted), ip("203.0.113.9"));
        let p = parts_from("10.0.0.2:5000", &["203.0.113.9", "10.0.0.7"]);
        assert_eq!(source_address(&p, &trusted), ip("203.0.113.9"));
        // A garbage hop stops the walk at the last good address.
        let p = parts_from("10.0.0.2:5000", &["not-an-ip, 10.0.0.7"]);
        assert_eq!(source_address(&p, &trusted), ip("10.0.0.7"));
        // No header: the proxy itself.
        let p = parts_from("10.0.0.2:5000", &[]);
        assert_eq!(source_address(&p, &trusted), ip("10.0.0.2"));
        // IPv4 on a dual-stack socket reads as IPv4.
        let p = parts_from("[::ffff:198.51.100.4]:5000", &[]);
        assert_eq!(source_address(&p, &trusted), ip("198.51.100.4"));
    }

    #[test]
    fn live_keys_secrets_and_tokens_are_recognised_and_test_ones_are_not() {
        assert!(is_live("lk_live_admin_abc"));
        assert!(is_live(" lk_live_key_abc "));
        assert!(is_live(&jwt(r#"{"sub":"usr_1","mode":"live"}"#)));
        assert!(!is_live("lk_test_admin_abc"));
        assert!(!is_live(&jwt(r#"{"sub":"usr_1","mode":"test"}"#)));
        assert!(!is_live(&jwt(r#"{"sub":"usr_1"}"#)));
        assert!(!is_live(&jwt(r#"{"mode":{"x":1}}"#)));
        assert!(!is_live("a.b"));
        assert!(!is_live("not.base64!.sig"));
    }

    #[test]
    fn every_header_place_of_a_credential_is_searched() {
        let live_basic = STANDARD.encode("usr_1:lk_live_secret_x");
        let live_basic_encoded = STANDARD.encode("usr_1:lk%5Flive%5Fsecret_x");
        let test_basic = STANDARD.encode("usr_1:lk_test_secret_x");
        let live_jwt = jwt(r#"{"mode":"live"}"#);
        for (pairs, live) in [
            (vec![("authorization", "Bearer lk_live_admin_x")], true),
            (vec![("authorization", "bearer  lk_live_admin_x")], true),
            (vec![("authorization", "Bearer lk_test_admin_x")], false),
            (
                vec![("authorization", &*format!("Basic {live_basic}"))],
                true,
            ),
            (
                vec![("authorization", &*format!("Basic {live_basic_encoded}"))],
                true,
            ),
            (
                vec![("authorization", &*format!("Basic {test_basic}"))],
                false,
            ),
            (
                vec![("authorization", &*format!("Bearer {live_jwt}"))],
                true,
            ),
            (vec![("x-api-key", "lk_live_key_x")], true),
            (vec![("x-api-key", "lk_test_key_x")], false),
            (
                vec![
                    ("authorization", "Bearer lk_test_admin_x"),
                    ("authorization", "Bearer lk_live_admin_x"),
                ],
                true,
            ),
            (vec![], false),
        ] {
            assert_eq!(
                headers_carry_live_credential(&headers(&pairs)),
                live,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn oauth_forms_and_verify_bodies_are_searched() {
        let live_jwt = jwt(r#"{"mode":"live"}"#);
        assert!(form_carries_live_credential(
            b"grant_type=client_credentials&client_id=usr_1&client_secret=lk_live_secret_x"
        ));
        assert!(form_carries_live_credential(
            b"client_secret=lk%5Flive%5Fsecret_x"
        ));
        assert!(form_carries_live_credential(b"token=lk_live_key_x"));
        assert!(form_carries_live_credential(
            format!("grant_type=x&assertion={live_jwt}").as_bytes()
        ));
        assert!(form_carries_live_credential(
            format!("client_assertion={live_jwt}&client_id=usr_1").as_bytes()
        ));
        assert!(!form_carries_live_credential(
            b"grant_type=client_credentials&client_secret=lk_test_secret_x"
        ));
        assert!(!form_carries_live_credential(
            b"scope=lk_live_not_a_credential"
        ));
        assert!(json_carries_live_key(br#"{"key": "lk_live_key_x"}"#));
        assert!(!json_carries_live_key(br#"{"key": "lk_test_key_x"}"#));
        assert!(!json_carries_live_key(br#"{"key": 5}"#));
        assert!(!json_carries_live_key(b"not json"));
    }

    #[test]
    fn only_a_trusted_peer_saying_https_counts_as_tls() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        let request = |peer: &str, protos: &[&str]| {
            let mut builder = Request::builder().uri("/");
            for proto in protos {
                builder = builder.header("x-forwarded-proto", *proto);
            }
            let mut request = builder.body(Body::empty()).unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            request
        };
        assert!(via_trusted_proxy(
            &request("127.0.0.1:5000", &["https"]),
            &trusted
        ));
        assert!(via_trusted_proxy(
            &request("127.0.0.1:5000", &["HTTPS"]),
            &trusted
        ));
        assert!(via_trusted_proxy(
            &request("[fd00::1]:5000", &["https"]),
            &trusted
        ));
        assert!(via_trusted_proxy(
            &request("[::ffff:127.0.0.1]:5000", &["https"]),
            &trusted
        ));
        assert!(!via_trusted_proxy(
            &request("127.0.0.1:5000", &[]),
            &trusted
        ));
        assert!(!via_trusted_proxy(
            &request("127.0.0.1:5000", &["http"]),
            &trusted
        ));
        assert!(!via_trusted_proxy(
            &request("127.0.0.1:5000", &["https, http"]),
            &trusted
        ));
        assert!(!via_trusted_proxy(
            &request("127.0.0.1:5000", &["https", "http"]),
            &trusted
        ));
        assert!(!via_trusted_proxy(
            &request("192.0.2.1:5000", &["https"]),
            &trusted
        ));
        assert!(!via_trusted_proxy(
            &request("127.0.0.1:5000", &["https"]),
            &[]
        ));
    }
}
