//! `latchkey token`: an access token through the client-credentials grant,
//! with HTTP Basic client authentication, optionally decoded for reading.

use anyhow::{anyhow, bail, Context as _};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use latchkey_core::credential::CredentialKind;
use latchkey_core::oauth_form::{JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT};
use latchkey_core::Secret;
use latchkey_types::oauth::TokenResponse;

use crate::cli::TokenArgs;
use crate::client::{check_credential, sensitive_header, Client};
use crate::output::emit;

/// JWTs use unpadded base64url, but be lenient about padding when reading.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `POST /oauth/token` with `grant_type=client_credentials`, or the token
/// exchange of a trusted issuer's token.
pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.url)?;
    let mut form = form(&args.scopes, args.audience, args.tenant);
    let authorization = match &args.subject_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the subject token {}", path.display()))?;
            let token = token.trim();
            if token.is_empty() {
                bail!("the subject token file {} is empty", path.display());
            }
            form[0] = ("grant_type", TOKEN_EXCHANGE_GRANT.to_owned());
            form.push(("subject_token", token.to_owned()));
            form.push(("subject_token_type", JWT_TOKEN_TYPE.to_owned()));
            None
        }
        None => {
            let Some(client_id) = args.client_id.as_deref() else {
                bail!("no client id: set LATCHKEY_CLIENT_ID or pass --client-id (or exchange a token with --subject-token-file)");
            };
            let Some(secret) = args
                .client_secret
                .filter(|s| !s.is_empty())
                .map(Secret::new)
            else {
                bail!("no client secret: set LATCHKEY_CLIENT_SECRET (preferred) or pass --client-secret");
            };
            check_credential(
                &secret,
                &[CredentialKind::ClientSecret, CredentialKind::ApiKey],
                "client secret",
                client.base(),
            )?;
            Some(sensitive_header(&basic_auth(client_id, &secret))?)
        }
    };
    let resp = client
        .post_form(&["oauth", "token"], &form, authorization)
        .await?;
    // With --json alone the body is printed as sent, without requiring that
    // this version of the CLI understands every field of it.
    if args.json {
        emit(&resp.body)?;
    }
    if args.json && !args.decode {
        return Ok(());
    }
    let token: TokenResponse = resp.parse()?;
    if !args.json {
        emit(&token.access_token)?;
    }
    if args.decode {
        let (header, claims) = decode_jwt(&token.access_token)?;
        eprintln!("Decoded header and claims follow. The signature was NOT verified.");
        emit(&serde_json::to_string_pretty(&header)?)?;
        emit(&serde_json::to_string_pretty(&claims)?)?;
    }
    Ok(())
}

/// The form parameters: the grant type and whatever the user asked for.
/// Several `--scope` values, each possibly space-separated, make one
/// space-separated `scope`.
fn form(
    scopes: &[String],
    audience: Option<String>,
    tenant: Option<String>,
) -> Vec<(&'static str, String)> {
    let mut form = vec![("grant_type", "client_credentials".to_owned())];
    let scope = scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ");
    if !scope.is_empty() {
        form.push(("scope", scope));
    }
    if let Some(audience) = audience {
        form.push(("audience", audience));
    }
    if let Some(tenant) = tenant {
        form.push(("tenant_id", tenant));
    }
    form
}

/// The `Authorization` value for `client_secret_basic`, as the server reads
/// it (`latchkey_core::oauth_form::basic_header`: RFC 6749 §2.3.1
/// form-urlencodes the id and the secret before joining them with `:` and
/// base64-encoding, so a `:` or non-ASCII character in either survives).
pub fn basic_auth(client_id: &str, secret: &Secret) -> String {
    latchkey_core::oauth_form::basic_header(client_id, secret.expose())
}

/// The header and claims of a compact JWS, decoded but NOT verified.
pub fn decode_jwt(token: &str) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("the access token is not a JWT (expected three dot-separated parts)");
    };
    let part = |name: &str, b64: &str| -> anyhow::Result<serde_json::Value> {
        let bytes = BASE64URL
            .decode(b64)
            .map_err(|e| anyhow!("the token's {name} is not base64url: {e}"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("the token's {name} is not JSON"))
    };
    Ok((part("header", header)?, part("claims", claims)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn unbasic(header: &str) -> String {
        let b64 = header.strip_prefix("Basic ").unwrap();
        String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
    }

    #[test]
    fn basic_auth_of_plain_credentials() {
        let secret = Secret::new("lk_test_secret_ABC123".into());
        let header = basic_auth("usr_01h9", &secret);
        assert_eq!(
            header,
            format!(
                "Basic {}",
                STANDARD.encode("usr_01h9:lk_test_secret_ABC123")
            )
        );
    }

    #[test]
    fn basic_auth_form_urlencodes_before_base64() {
        // RFC 6749 §2.3.1 / Appendix B: application/x-www-form-urlencoded,
        // so a space becomes `+` and reserved characters are %-escaped.
        let secret = Secret::new("p:a ss/wörd+%".into());
        assert_eq!(
            unbasic(&basic_auth("id:with space", &secret)),
            "id%3Awith+space:p%3Aa+ss%2Fw%C3%B6rd%2B%25"
        );
        // Exactly one unencoded `:` separates the two.
        assert_eq!(unbasic(&basic_auth("a", &secret)).matches(':').count(), 1);
    }

    #[test]
    fn the_form_joins_scopes_and_names_the_tenant() {
        let form = form(
            &["a:read b:read".into(), "c:write".into()],
            Some("https://api.example".into()),
            Some("acme".into()),
        );
        assert_eq!(
            form,
            [
                ("grant_type", "client_credentials".to_owned()),
                ("scope", "a:read b:read c:write".to_owned()),
                ("audience", "https://api.example".to_owned()),
                ("tenant_id", "acme".to_owned()),
            ]
        );
        assert_eq!(super::form(&[], None, None).len(), 1);
    }

    #[test]
    fn decoding_reads_header_and_claims_without_verifying() {
        let enc = |v: serde_json::Value| BASE64URL.encode(v.to_string());
        let token = format!(
            "{}.{}.{}",
            enc(serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"})),
            enc(serde_json::json!({"sub": "usr_1", "tenantId": "acme"})),
            "not-a-real-signature"
        );
        let (header, claims) = decode_jwt(&token).unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(claims["tenantId"], "acme");

        assert!(decode_jwt("abc").is_err());
        assert!(decode_jwt("a.b.c.d").is_err());
        assert!(decode_jwt("!!.e30.x").is_err());
    }
}
