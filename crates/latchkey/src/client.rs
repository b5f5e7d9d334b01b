//! A small HTTP client for Latchkey's API: the base URL, the credential sent
//! with every request, and turning error responses into one-line messages.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use latchkey_core::credential::{self, CredentialError, CredentialKind};
use latchkey_core::Secret;
use latchkey_types::Mode;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// How long one request may take before the CLI gives up.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long an import or export may take (the server allows an hour).
const LONG_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long connecting may take: an unreachable host fails sooner than a
/// slow answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A successful (2xx) response.
#[derive(Debug)]
pub struct Response {
    /// The body, as text: `--json` prints it unchanged.
    pub body: String,
}

impl Response {
    /// Parses the body as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_str(&self.body).map_err(|e| {
            anyhow!("the server's response is not what this version of latchkey expects ({e}); --json shows it as sent")
        })
    }
}

/// A non-2xx answer of the server, already described for people.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// One line: the problem's code and detail, or the OAuth error.
    pub message: String,
}

/// The environment variable naming an extra CA file (PEM) to trust.
pub const CA_FILE_VAR: &str = "LATCHKEY_CA_FILE";

/// The HTTP client, bound to one server and (for `/v1`) one admin key.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// `Bearer <admin key>`, marked sensitive so it never shows in debug output.
    authorization: Option<HeaderValue>,
}

impl Client {
    /// A client for the server at `base_url`, without a credential.
    pub fn new(base_url: &str) -> anyhow::Result<Client> {
        let base = parse_base_url(base_url)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("latchkey-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT);
        // A CA to trust besides the system's, such as the development CA of
        // `latchkey serve --tls-self-signed`.
        if let Some(path) = std::env::var_os(CA_FILE_VAR).filter(|p| !p.is_empty()) {
            let pem = std::fs::read(&path).with_context(|| {
                format!("{CA_FILE_VAR}: cannot read {}", Path::new(&path).display())
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!(
                    "{CA_FILE_VAR}: {} is not a PEM certificate",
                    Path::new(&path).display()
                )
            })?;
            if certs.is_empty() {
                bail!(
                    "{CA_FILE_VAR}: {} holds no certificate",
                    Path::new(&path).display()
                );
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        Ok(Client {
            http,
            base,
            authorization: None,
        })
    }

    /// A client for `/v1`, sending `admin_key` as a bearer token.
    pub fn with_admin_key(base_url: &str, admin_key: Option<String>) -> anyhow::Result<Client> {
        let Some(key) = admin_key.filter(|k| !k.is_empty()).map(Secret::new) else {
            bail!("no admin key: set LATCHKEY_ADMIN_KEY (preferred) or pass --admin-key");
        };
        let mut client = Client::new(base_url)?;
        check_credential(&key, &[CredentialKind::Admin], "admin key", &client.base)?;
        client.authorization = Some(sensitive_header(&format!("Bearer {}", key.expose()))?);
        Ok(client)
    }

    /// The same server with `token` as the bearer credential of every
    /// request (a login's secret, a session's access token).
    pub fn bearer(&self, token: &str) -> anyhow::Result<Client> {
        Ok(Client {
            http: self.http.clone(),
            base: self.base.clone(),
            authorization: Some(sensitive_header(&format!("Bearer {token}"))?),
        })
    }

    /// The same server without a credential.
    pub fn anonymous(&self) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            authorization: None,
        }
    }

    /// The base URL, for messages.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of `segments` under the base URL, each segment percent-encoded,
    /// with the query pairs whose value is present.
    pub fn url(&self, segments: &[&str], query: &[(&str, Option<String>)]) -> Url {
        endpoint(&self.base, segments, query)
    }

    /// Sends a JSON request and returns the 2xx response, or an [`ApiError`].
    pub async fn send<B: serde::Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, Option<String>)],
        body: Option<&B>,
    ) -> anyhow::Result<Response> {
        let url = self.url(segments, query);
        let mut req = self.http.request(method, url.clone());
        if let Some(auth) = &self.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        self.finish(req, &url).await
    }

    /// `GET`.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, Option<String>)],
    ) -> anyhow::Result<Response> {
        self.send::<()>(Method::GET, segments, query, None).await
    }

    /// `DELETE`.
    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<Response> {
        self.send::<()>(Method::DELETE, segments, &[], None).await
    }

    /// `POST` of a form (the OAuth endpoints) with this `Authorization` value.
    pub async fn post_form(
        &self,
        segments: &[&str],
        form: &[(&str, String)],
        authorization: Option<HeaderValue>,
    ) -> anyhow::Result<Response> {
        let url = self.url(segments, &[]);
        let mut req = self.http.post(url.clone()).form(form);
        if let Some(authorization) = authorization {
            req = req.header(AUTHORIZATION, authorization);
        }
        self.finish(req, &url).await
    }

    /// `POST` of a form without client authentication (a public client's
    /// refresh-token grant).
    pub async fn post_public_form(
        &self,
        segments: &[&str],
        form: &[(&str, String)],
    ) -> anyhow::Result<Response> {
        let url = self.url(segments, &[]);
        let req = self.http.post(url.clone()).form(form);
        self.finish(req, &url).await
    }

    /// `GET` of an absolute URL (a `jwks_uri` named by the server's
    /// metadata), without the admin key: it may point to another host.
    pub async fn get_absolute(&self, url: &Url) -> anyhow::Result<Response> {
        if !matches!(url.scheme(), "http" | "https") {
            bail!("refusing to fetch {url}: use http:// or https://");
        }
        let req = self.http.get(url.clone());
        self.finish(req, url).await
    }

    /// `POST` without a body, with these headers (and no admin key): the
    /// verify endpoint, whose credentials are all in headers.
    pub async fn post_headers(
        &self,
        segments: &[&str],
        headers: &[(&'static str, HeaderValue)],
    ) -> anyhow::Result<Response> {
        let url = self.url(segments, &[]);
        let mut req = self.http.post(url.clone());
        for (name, value) in headers {
            req = req.header(*name, value.clone());
        }
        self.finish(req, &url).await
    }

    /// `POST` of a streamed body with the admin key (an import); the
    /// answer as text. No overall timeout: a large file takes minutes.
    pub async fn post_body(
        &self,
        segments: &[&str],
        query: &[(&str, Option<String>)],
        content_type: &'static str,
        body: reqwest::Body,
    ) -> anyhow::Result<Response> {
        let url = self.url(segments, query);
        let mut req = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, content_type)
            .timeout(LONG_TIMEOUT)
            .body(body);
        if let Some(auth) = &self.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        self.finish(req, &url).await
    }

    /// `GET` whose 2xx body is read piece by piece (an export), passed to
    /// `each` as it arrives.
    pub async fn get_chunks(
        &self,
        segments: &[&str],
        mut each: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let url = self.url(segments, &[]);
        let mut req = self.http.get(url.clone()).timeout(LONG_TIMEOUT);
        if let Some(auth) = &self.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let mut resp = req.send().await.map_err(|e| {
            anyhow::Error::new(e.without_url()).context(format!("request to {url} failed"))
        })?;
        let status = resp.status();
        if !status.is_success() {
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp.text().await.unwrap_or_default();
            return Err(ApiError {
                status,
                message: describe_error(status, &content_type, &body, &url),
            }
            .into());
        }
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| anyhow::Error::new(e.without_url()).context(format!("reading {url}")))?
        {
            each(&chunk)?;
        }
        Ok(())
    }

    async fn finish(&self, req: reqwest::RequestBuilder, url: &Url) -> anyhow::Result<Response> {
        // The URL is named by us, without reqwest's copy of it, and the
        // request itself (which holds the credential) is never formatted.
        let resp = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            anyhow::Error::new(e.without_url()).context(format!("request to {url} {what}"))
        })?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp
            .text()
            .await
            .map_err(|e| anyhow::Error::new(e.without_url()))
            .with_context(|| format!("reading the response of {url}"))?;
        if status.is_success() {
            Ok(Response { body })
        } else {
            Err(ApiError {
                status,
                message: describe_error(status, &content_type, &body, url),
            }
            .into())
        }
    }
}

/// Checks that `secret` is a well-formed Latchkey credential of one of
/// `kinds`, and refuses to send a live one over plain HTTP: the server would
/// refuse it with `tls_required`, but only after it crossed the network in
/// the clear. Messages never include the value.
pub fn check_credential(
    secret: &Secret,
    kinds: &[CredentialKind],
    what: &str,
    base: &Url,
) -> anyhow::Result<()> {
    let info = credential::parse(secret.expose()).map_err(|e| match e {
        CredentialError::Malformed => {
            anyhow!("the {what} is not a Latchkey credential (lk_<mode>_<type>_…)")
        }
        CredentialError::BadChecksum => {
            anyhow!("the {what} has a wrong checksum: it was probably mistyped or truncated")
        }
    })?;
    if !kinds.contains(&info.kind) {
        bail!(
            "the {what} is a Latchkey credential of the wrong type ({:?})",
            info.kind
        );
    }
    if info.mode == Mode::Live && base.scheme() != "https" {
        bail!("refusing to send a live {what} over plain HTTP to {base}; use an https:// URL");
    }
    Ok(())
}

/// A header value that reqwest and http keep out of debug output.
pub fn sensitive_header(value: &str) -> anyhow::Result<HeaderValue> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| anyhow!("the credential contains characters not allowed in an HTTP header"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Validates the `--url` / `LATCHKEY_URL` value.
fn parse_base_url(s: &str) -> anyhow::Result<Url> {
    let url = Url::parse(s).map_err(|e| anyhow!("invalid server URL {s:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("invalid server URL {s:?}: use http:// or https://");
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo it: the user info may hold a password.
        bail!("the server URL must not contain credentials; use LATCHKEY_ADMIN_KEY");
    }
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        bail!("invalid server URL {s:?}: give only scheme, host, port and optional path");
    }
    Ok(url)
}

/// `base` + `segments` + query. Kept apart from [`Client`] for tests.
fn endpoint(base: &Url, segments: &[&str], query: &[(&str, Option<String>)]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    let present: Vec<(&str, &str)> = query
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .collect();
    if !present.is_empty() {
        url.query_pairs_mut().extend_pairs(present);
    }
    url
}

/// The parts of an RFC 9457 problem the CLI shows. Parsed leniently (not as
/// `latchkey_types::error::Problem`) so that a code added by a newer server
/// is still shown rather than failing the parse.
#[derive(Deserialize)]
struct ProblemView {
    title: Option<String>,
    detail: Option<String>,
    code: Option<String>,
}

/// The parts of an RFC 6749 §5.2 error the CLI shows.
#[derive(Deserialize)]
struct OAuthErrorView {
    error: String,
    error_description: Option<String>,
}

/// One line describing a non-2xx response: the problem's code and detail,
/// the OAuth error and description, or else the status and a short excerpt.
pub fn describe_error(status: StatusCode, content_type: &str, body: &str, url: &Url) -> String {
    let http = format!("HTTP {}", status.as_u16());
    let is_json = content_type.contains("json");
    if is_json {
        if let Ok(p) = serde_json::from_str::<ProblemView>(body) {
            if p.code.is_some() || p.detail.is_some() {
                let detail = p.detail.or(p.title).unwrap_or_default();
                return match p.code {
                    Some(code) if detail.is_empty() => format!("{code} ({http})"),
                    Some(code) => format!("{code}: {} ({http})", one_line(&detail)),
                    None => format!("{} ({http})", one_line(&detail)),
                };
            }
        }
        if let Ok(o) = serde_json::from_str::<OAuthErrorView>(body) {
            return match o.error_description {
                Some(d) if !d.is_empty() => format!("{}: {} ({http})", o.error, one_line(&d)),
                _ => format!("{} ({http})", o.error),
            };
        }
    }
    let reason = status.canonical_reason().unwrap_or("error");
    let excerpt = one_line(body);
    if excerpt.is_empty() {
        format!("{http} {reason} from {url}")
    } else {
        format!("{http} {reason} from {url}: {excerpt}")
    }
}

/// Collapses whitespace and control characters and keeps at most 200
/// characters, so a message stays one line.
fn one_line(s: &str) -> String {
    let collapsed = s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if collapsed.chars().count() > 200 {
        let mut cut: String = collapsed.chars().take(200).collect();
        cut.push('…');
        cut
    } else {
        collapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> Url {
        parse_base_url(s).unwrap()
    }

    #[test]
    fn endpoints_join_segments_and_encode_them() {
        let b = base("http://127.0.0.1:8080");
        assert_eq!(
            endpoint(&b, &["v1", "tenants", "acme"], &[]).as_str(),
            "http://127.0.0.1:8080/v1/tenants/acme"
        );
        let b = base("https://example.com/auth/");
        assert_eq!(
            endpoint(&b, &["v1", "roles", "a/b c"], &[]).as_str(),
            "https://example.com/auth/v1/roles/a%2Fb%20c"
        );
        let u = endpoint(
            &b,
            &["v1", "users"],
            &[
                ("kind", Some("machine".into())),
                ("tenantId", None),
                ("cursor", Some("a&b=c".into())),
            ],
        );
        assert_eq!(
            u.as_str(),
            "https://example.com/auth/v1/users?kind=machine&cursor=a%26b%3Dc"
        );
    }

    #[test]
    fn base_urls_are_checked_without_echoing_credentials() {
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("not a url").is_err());
        assert!(parse_base_url("http://h/?q=1").is_err());
        let err = parse_base_url("http://admin:hunter2@h")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn problems_show_code_and_detail() {
        let body = r#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no tenant \"acme\"","code":"not_found"}"#;
        let m = describe_error(
            StatusCode::NOT_FOUND,
            "application/problem+json",
            body,
            &base("http://h"),
        );
        assert_eq!(m, r#"not_found: no tenant "acme" (HTTP 404)"#);
    }

    #[test]
    fn oauth_errors_show_error_and_description() {
        let m = describe_error(
            StatusCode::UNAUTHORIZED,
            "application/json;charset=UTF-8",
            r#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
            &base("http://h"),
        );
        assert_eq!(m, "invalid_client: client authentication failed (HTTP 401)");
        let m = describe_error(
            StatusCode::BAD_REQUEST,
            "application/json",
            r#"{"error":"invalid_scope"}"#,
            &base("http://h"),
        );
        assert_eq!(m, "invalid_scope (HTTP 400)");
    }

    #[test]
    fn other_errors_name_the_url_and_stay_on_one_line() {
        let m = describe_error(
            StatusCode::BAD_GATEWAY,
            "text/html",
            "<html>\n<body>bad gateway</body>\n</html>",
            &base("http://proxy:80/x"),
        );
        assert_eq!(
            m,
            "HTTP 502 Bad Gateway from http://proxy/x: <html> <body>bad gateway</body> </html>"
        );
        let m = describe_error(StatusCode::NOT_FOUND, "", "", &base("http://h/"));
        assert_eq!(m, "HTTP 404 Not Found from http://h/");
        let long = "x".repeat(500);
        let m = describe_error(
            StatusCode::IM_A_TEAPOT,
            "text/plain",
            &long,
            &base("http://h"),
        );
        assert!(m.chars().count() < 260);
    }

    #[test]
    fn credentials_are_checked_for_type_and_mode_without_echoing_them() {
        let http = base("http://127.0.0.1:8080");
        let https = base("https://auth.example");
        let test_admin = credential::generate(Mode::Test, CredentialKind::Admin);
        let live_admin = credential::generate(Mode::Live, CredentialKind::Admin);
        let secret = credential::generate(Mode::Test, CredentialKind::ClientSecret);
        assert!(
            check_credential(&test_admin, &[CredentialKind::Admin], "admin key", &http).is_ok()
        );
        assert!(
            check_credential(&live_admin, &[CredentialKind::Admin], "admin key", &https).is_ok()
        );

        let cases = [(&live_admin, &http), (&secret, &http)];
        for (cred, url) in cases {
            let err = check_credential(cred, &[CredentialKind::Admin], "admin key", url)
                .unwrap_err()
                .to_string();
            assert!(!err.contains(cred.expose()), "{err}");
        }

        let mut typo = test_admin.expose().to_owned();
        let last = typo.pop().unwrap();
        typo.push(if last == 'a' { 'b' } else { 'a' });
        let err = check_credential(
            &Secret::new(typo.clone()),
            &[CredentialKind::Admin],
            "admin key",
            &http,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("checksum") && !err.contains(&typo), "{err}");
        let err = check_credential(
            &Secret::new("hunter2".into()),
            &[CredentialKind::Admin],
            "admin key",
            &http,
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_missing_admin_key_says_where_to_put_it() {
        let err = Client::with_admin_key("http://h", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("LATCHKEY_ADMIN_KEY"), "{err}");
        let err = Client::with_admin_key("http://h", Some(String::new()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LATCHKEY_ADMIN_KEY"), "{err}");
    }

    #[test]
    fn the_client_debug_output_hides_the_admin_key() {
        let key = credential::generate(Mode::Test, CredentialKind::Admin);
        let client = Client::with_admin_key("http://h", Some(key.expose().to_owned())).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains(key.expose()), "{debug}");
    }

    #[tokio::test]
    async fn network_errors_name_the_url() {
        // Port 9 on loopback (discard) is closed on any sane test machine.
        let client = Client::new("http://127.0.0.1:9").unwrap();
        let err = client.get(&["v1", "workspace"], &[]).await.unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("request to http://127.0.0.1:9/v1/workspace"),
            "{msg}"
        );
    }
}
