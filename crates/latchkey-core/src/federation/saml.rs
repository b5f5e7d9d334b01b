//! SAML 2.0 Web Browser SSO, Latchkey as service provider: what an IdP's
//! configuration must say, the SP metadata and the `AuthnRequest` Latchkey
//! sends (HTTP-Redirect binding, unsigned), and which `Response` it
//! accepts at its assertion consumer service (HTTP-POST binding).
//!
//! The XML signature itself is checked by `bergshamra` (pure Rust, on
//! aws-lc-rs) with the IdP's pinned certificates only; everything around it
//! is this module's strict profile, because signature wrapping lives in the
//! gap between "a signature verifies" and "the element used is the element
//! signed":
//! - the document is parsed once, with any DTD refused (no entity is ever
//!   expanded or fetched), and every check reads that one tree;
//! - the `Response` holds exactly one `Assertion` anywhere in the document,
//!   as its direct child, and no encrypted one;
//! - a `Signature` may only be a direct child of the `Response` or of the
//!   `Assertion`, have exactly one `Reference`, whose URI is `#` and the
//!   parent's `ID` and whose resolved node is that parent, with only the
//!   enveloped-signature and exclusive C14N transforms; SHA-1 is refused
//!   unless the provider allows it; every present signature must verify;
//! - IDs are unique in the document (a duplicate is refused);
//! - `Destination`, `InResponseTo`, `Issuer`, `Audience`, `Recipient`,
//!   `NotBefore`/`NotOnOrAfter` (conditions and subject confirmation) are
//!   checked with a configurable skew, and a value read as text (the
//!   `NameID`, attribute values) must be one text node: a comment inside it
//!   is refused, not cut at.
//!
//! Replay (each assertion id accepted once) is the server's, in the store.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use latchkey_types::federation::{ProviderType, PutIdentityProvider};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uppsala::{Document, NodeId, NodeKind};

use super::workload::{is_http_url, ConfigError};

/// SAML 2.0 protocol namespace.
pub const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// SAML 2.0 assertion namespace.
pub const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// SAML 2.0 metadata namespace.
pub const METADATA_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// The HTTP-Redirect binding.
pub const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
/// The HTTP-POST binding.
pub const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const STRONG_SIGNATURES: [&str; 6] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
const SHA1_SIGNATURES: [&str; 2] = [
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
];
const STRONG_DIGESTS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
const SHA1_DIGEST: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// `AuthnContextClassRef` values that say the person used a second factor
/// (read as the `amr` value `mfa` when the provider is trusted for MFA).
/// (`Smartcard` and `X509` alone are one factor, and do not count.)
pub const MFA_CONTEXTS: [&str; 6] = [
    "https://refeds.org/profile/mfa",
    "http://schemas.microsoft.com/claims/multipleauthn",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
];

/// The default clock skew allowed on SAML time conditions, in seconds.
pub const DEFAULT_SKEW_SECONDS: u32 = 60;
/// The largest skew a provider may allow, in seconds.
pub const MAX_SKEW_SECONDS: u32 = 600;
/// The largest SAML document read (decoded), in bytes. (The ACS's form
/// body is limited to 64 KiB like every body, which holds a response of
/// about 45 KiB.)
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// The most nodes a SAML document may have.
pub const MAX_NODES: usize = 8192;
/// The longest `InclusiveNamespaces PrefixList` accepted, in bytes and
/// prefixes (canonicalization's cost grows with it for every element).
const MAX_PREFIX_LIST: (usize, usize) = (256, 16);
/// The most signing certificates one IdP may have (for rollover).
pub const MAX_CERTIFICATES: usize = 4;

/// Why a SAML response (or a metadata document) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn no(why: impl Into<String>) -> Refused {
    Refused(why.into())
}

fn refuse(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// An identity provider, as its configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idp {
    /// Its entity id (the `Issuer` of its responses and assertions).
    pub entity_id: String,
    /// Its single sign-on service (HTTP-Redirect binding).
    pub sso_url: String,
    /// Its signing certificates, DER.
    pub certificates: Vec<Vec<u8>>,
}

/// Parses XML with every DTD refused: no entity is declared, expanded or
/// fetched.
fn parse(xml: &str) -> Result<Document<'_>, Refused> {
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(no("a DTD is not accepted"));
    }
    uppsala::Parser::new()
        .with_forbid_dtd(true)
        .with_forbid_entities(true)
        .with_max_depth(64)
        .parse(xml)
        .map_err(|e| no(format!("not well-formed XML: {e}")))
}

fn is(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> bool {
    doc.element(node)
        .is_some_and(|e| e.name.matches(Some(ns), local))
}

fn child_elements<'d>(
    doc: &'d Document<'_>,
    node: NodeId,
    ns: &'d str,
    local: &'d str,
) -> impl Iterator<Item = NodeId> + 'd {
    doc.children(node)
        .into_iter()
        .filter(move |c| is(doc, *c, ns, local))
}

fn child(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> Option<NodeId> {
    child_elements(doc, node, ns, local).next()
}

fn attr<'d>(doc: &'d Document<'_>, node: NodeId, name: &str) -> Option<&'d str> {
    doc.get_attribute(node, name)
}

/// An element's text, which must be one run of text (CDATA counts as
/// text): a comment, processing instruction or element inside it is
/// refused, so that `alice@example.com<!---->.evil.example` is never read
/// as `alice@example.com`.
fn text_of(doc: &Document<'_>, node: NodeId, what: &str) -> Result<String, Refused> {
    let mut out = String::new();
    for c in doc.children(node) {
        match doc.node_kind(c) {
            Some(NodeKind::Text(t) | NodeKind::CData(t)) => out.push_str(t),
            _ => return Err(no(format!("{what} is not plain text"))),
        }
    }
    Ok(out.trim().to_owned())
}

fn descendants_named(doc: &Document<'_>, ns: &str, local: &str) -> Vec<NodeId> {
    doc.descendants(doc.root())
        .into_iter()
        .filter(|n| is(doc, *n, ns, local))
        .collect()
}

fn decode_certificate(b64: &str, field: &str) -> Result<Vec<u8>, ConfigError> {
    let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(compact)
        .map_err(|_| refuse(field, "a certificate is not base64"))?;
    bergshamra_keys::loader::load_x509_cert_der(&der)
        .map_err(|e| refuse(field, format!("not a usable X.509 certificate: {e}")))?;
    Ok(der)
}

/// The certificates of a PEM text (one or more `CERTIFICATE` blocks).
fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, ConfigError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let end = body
            .find(END)
            .ok_or_else(|| refuse("certificatePem", "a certificate block is not closed"))?;
        out.push(decode_certificate(&body[..end], "certificatePem")?);
        rest = &body[end + END.len()..];
    }
    if out.is_empty() {
        return Err(refuse(
            "certificatePem",
            "holds no -----BEGIN CERTIFICATE----- block",
        ));
    }
    Ok(out)
}

/// Reads an IdP's metadata document: its `entityID`, the HTTP-Redirect
/// single sign-on service and the signing certificates.
pub fn parse_metadata(xml: &str) -> Result<Idp, ConfigError> {
    let field = "metadataXml";
    let doc = parse(xml).map_err(|e| refuse(field, e.0))?;
    let root = doc
        .document_element()
        .filter(|r| is(&doc, *r, METADATA_NS, "EntityDescriptor"))
        .ok_or_else(|| refuse(field, "is not an md:EntityDescriptor"))?;
    let entity_id = attr(&doc, root, "entityID")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| refuse(field, "the EntityDescriptor has no entityID"))?
        .to_owned();
    let idp = child(&doc, root, METADATA_NS, "IDPSSODescriptor")
        .ok_or_else(|| refuse(field, "has no IDPSSODescriptor"))?;
    let sso_url = child_elements(&doc, idp, METADATA_NS, "SingleSignOnService")
        .find(|s| attr(&doc, *s, "Binding") == Some(REDIRECT_BINDING))
        .and_then(|s| attr(&doc, s, "Location"))
        .ok_or_else(|| {
            refuse(
                field,
                "has no SingleSignOnService with the HTTP-Redirect binding",
            )
        })?
        .to_owned();
    let mut certificates = Vec::new();
    for key in child_elements(&doc, idp, METADATA_NS, "KeyDescriptor") {
        if !matches!(attr(&doc, key, "use"), None | Some("signing")) {
            continue;
        }
        let certs = child(&doc, key, DSIG_NS, "KeyInfo")
            .and_then(|ki| child(&doc, ki, DSIG_NS, "X509Data"))
            .map(|data| child_elements(&doc, data, DSIG_NS, "X509Certificate").collect::<Vec<_>>())
            .unwrap_or_default();
        for cert in certs {
            let b64 = text_of(&doc, cert, "X509Certificate").map_err(|e| refuse(field, e.0))?;
            certificates.push(decode_certificate(&b64, field)?);
        }
    }
    if certificates.is_empty() {
        return Err(refuse(field, "names no signing certificate"));
    }
    Ok(Idp {
        entity_id,
        sso_url,
        certificates,
    })
}

/// The IdP a SAML provider's configuration describes: from `metadataXml`,
/// or from `entityId`, `ssoUrl` and `certificatePem`.
pub fn idp(config: &PutIdentityProvider) -> Result<Idp, ConfigError> {
    let explicit = [
        ("entityId", &config.entity_id),
        ("ssoUrl", &config.sso_url),
        ("certificatePem", &config.certificate_pem),
    ];
    let idp = match &config.metadata_xml {
        Some(xml) => {
            if let Some((field, _)) = explicit.iter().find(|(_, v)| v.is_some()) {
                return Err(refuse(
                    field,
                    "comes from metadataXml; give one or the other",
                ));
            }
            parse_metadata(xml)?
        }
        None => {
            for (field, value) in explicit {
                if value.is_none() {
                    return Err(refuse(
                        field,
                        "is required (or metadataXml) for a SAML provider",
                    ));
                }
            }
            Idp {
                entity_id: config.entity_id.clone().unwrap_or_default(),
                sso_url: config.sso_url.clone().unwrap_or_default(),
                certificates: pem_certificates(config.certificate_pem.as_deref().unwrap_or(""))?,
            }
        }
    };
    if idp.entity_id.is_empty()
        || idp.entity_id.len() > 512
        || idp.entity_id.chars().any(char::is_control)
    {
        return Err(refuse("entityId", "1 to 512 characters"));
    }
    if idp.sso_url.len() > 512
        || !is_http_url(&idp.sso_url)
        || idp.sso_url.chars().any(char::is_whitespace)
    {
        return Err(refuse(
            "ssoUrl",
            "must be an absolute http(s) URL of at most 512 bytes",
        ));
    }
    if idp.certificates.len() > MAX_CERTIFICATES {
        return Err(refuse(
            "certificatePem",
            format!("at most {MAX_CERTIFICATES} signing certificates"),
        ));
    }
    Ok(idp)
}

/// Checks a SAML provider's configuration: the IdP, the skew, and nothing
/// meant for OpenID Connect or OAuth 2.0.
pub fn validate(config: &PutIdentityProvider) -> Result<(), ConfigError> {
    debug_assert_eq!(config.kind, Some(ProviderType::Saml));
    idp(config)?;
    for (field, set) in [
        ("issuer", config.issuer.is_some()),
        ("authorizationUrl", config.authorization_url.is_some()),
        ("tokenUrl", config.token_url.is_some()),
        ("userinfoUrl", config.userinfo_url.is_some()),
        ("clientId", config.client_id.is_some()),
        ("clientSecret", config.client_secret.is_some()),
        ("scopes", config.scopes.is_some()),
    ] {
        if set {
            return Err(refuse(
                field,
                "is for OpenID Connect and OAuth 2.0 providers",
            ));
        }
    }
    if config
        .clock_skew_seconds
        .is_some_and(|s| s > MAX_SKEW_SECONDS)
    {
        return Err(refuse(
            "clockSkewSeconds",
            format!("0 to {MAX_SKEW_SECONDS}"),
        ));
    }
    Ok(())
}

/// This service provider, per identity provider and mode.
#[derive(Debug, Clone, Copy)]
pub struct Sp<'a> {
    /// Its entity id: the URL of its metadata.
    pub entity_id: &'a str,
    /// Its assertion consumer service (HTTP-POST binding).
    pub acs_url: &'a str,
}

impl<'a> Sp<'a> {
    /// The SP metadata URL of provider `id` under a mode's issuer.
    pub fn metadata_url(mode_issuer: &str, provider_id: &str) -> String {
        format!(
            "{}/auth/saml/{provider_id}/metadata",
            mode_issuer.trim_end_matches('/')
        )
    }

    /// The ACS URL of provider `id` under a mode's issuer.
    pub fn acs_url(mode_issuer: &str, provider_id: &str) -> String {
        format!(
            "{}/auth/saml/{provider_id}/acs",
            mode_issuer.trim_end_matches('/')
        )
    }
}

/// Escapes text for an XML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn instant(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The SP's metadata document: it signs no requests, wants assertions
/// signed, and consumes them with the POST binding.
pub fn sp_metadata(sp: Sp<'_>) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            "\n",
            r#"<md:EntityDescriptor xmlns:md="{md}" entityID="{entity}">"#,
            r#"<md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="{proto}">"#,
            r#"<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>"#,
            r#"<md:AssertionConsumerService Binding="{post}" Location="{acs}" index="0" isDefault="true"/>"#,
            r#"</md:SPSSODescriptor></md:EntityDescriptor>"#,
            "\n"
        ),
        md = METADATA_NS,
        entity = escape(sp.entity_id),
        proto = PROTOCOL_NS,
        post = POST_BINDING,
        acs = escape(sp.acs_url),
    )
}

/// A fresh request id: an NCName (`_` and 40 hex digits).
pub fn new_request_id() -> String {
    let bytes: [u8; 20] = rand::random();
    let mut id = String::with_capacity(41);
    id.push('_');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// The `AuthnRequest` sent to the IdP.
pub fn authn_request(sp: Sp<'_>, idp: &Idp, request_id: &str, now: OffsetDateTime) -> String {
    format!(
        concat!(
            r#"<samlp:AuthnRequest xmlns:samlp="{proto}" xmlns:saml="{assertion}" ID="{id}" Version="2.0" IssueInstant="{now}" "#,
            r#"Destination="{dest}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{post}">"#,
            r#"<saml:Issuer>{entity}</saml:Issuer>"#,
            r#"<samlp:NameIDPolicy AllowCreate="true"/>"#,
            r#"</samlp:AuthnRequest>"#
        ),
        proto = PROTOCOL_NS,
        assertion = ASSERTION_NS,
        id = escape(request_id),
        now = instant(now),
        dest = escape(&idp.sso_url),
        acs = escape(sp.acs_url),
        post = POST_BINDING,
        entity = escape(sp.entity_id),
    )
}

/// Where to send the browser: the IdP's SSO URL with the request deflated
/// and encoded as the HTTP-Redirect binding says, and `RelayState`.
pub fn redirect_url(idp: &Idp, request_xml: &str, relay_state: &str) -> String {
    let deflated = miniz_oxide::deflate::compress_to_vec(request_xml.as_bytes(), 6);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLRequest", &STANDARD.encode(deflated))
        .append_pair("RelayState", relay_state)
        .finish();
    let sep = if idp.sso_url.contains('?') { '&' } else { '?' };
    format!("{}{sep}{query}", idp.sso_url)
}

/// What a response must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The IdP.
    pub idp: &'a Idp,
    /// This SP.
    pub sp: Sp<'a>,
    /// The id of the request this login sent.
    pub request_id: &'a str,
    /// Now, in Unix seconds.
    pub now: i64,
    /// The skew allowed on time conditions, in seconds.
    pub skew: i64,
    /// Whether SHA-1 signatures and digests are accepted.
    pub allow_sha1: bool,
}

/// An accepted assertion: who signed in, and until when its id must be
/// remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// Its `ID` (accepted once).
    pub id: String,
    /// The `NameID`.
    pub name_id: String,
    /// Its `Format`, when given.
    pub name_id_format: Option<String>,
    /// Attribute values by attribute `Name`.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The `AuthnContextClassRef`, when given.
    pub authn_context: Option<String>,
    /// The last instant (Unix seconds, skew included) at which the
    /// assertion could still be accepted: its id is kept until then.
    pub remember_until: i64,
}

/// Decodes the `SAMLResponse` form field (base64 of the XML).
pub fn decode_response(field: &str) -> Result<String, Refused> {
    let compact: String = field.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.len() > MAX_DOCUMENT_BYTES * 4 / 3 + 4 {
        return Err(no("the SAMLResponse is too large"));
    }
    let bytes = STANDARD
        .decode(compact)
        .map_err(|_| no("the SAMLResponse is not base64"))?;
    String::from_utf8(bytes).map_err(|_| no("the SAMLResponse is not UTF-8 XML"))
}

fn time_attr(doc: &Document<'_>, node: NodeId, name: &str) -> Result<Option<i64>, Refused> {
    match attr(doc, node, name) {
        None => Ok(None),
        Some(v) => OffsetDateTime::parse(v, &Rfc3339)
            .map(|t| Some(t.unix_timestamp()))
            .map_err(|_| no(format!("{name} is not an xs:dateTime"))),
    }
}

/// A canonicalization's parameters: nothing, or one `InclusiveNamespaces`
/// with a short `PrefixList`.
fn check_c14n_parameters(doc: &Document<'_>, method: NodeId) -> Result<(), Refused> {
    let children: Vec<NodeId> = doc
        .children(method)
        .into_iter()
        .filter(|c| doc.element(*c).is_some())
        .collect();
    match children[..] {
        [] => Ok(()),
        [only] if is(doc, only, EXC_C14N, "InclusiveNamespaces") => {
            let list = attr(doc, only, "PrefixList").unwrap_or("");
            if list.len() > MAX_PREFIX_LIST.0 || list.split_whitespace().count() > MAX_PREFIX_LIST.1
            {
                Err(no(
                    "the signature's InclusiveNamespaces PrefixList is too long",
                ))
            } else {
                Ok(())
            }
        }
        _ => Err(no(
            "a canonicalization parameter other than InclusiveNamespaces",
        )),
    }
}

/// Checks one signature's declared algorithms and reference before its
/// value is checked: one reference to its parent, by the parent's ID, with
/// only the transforms a SAML signature uses, and no SHA-1 unless allowed.
fn check_signature_shape(
    doc: &Document<'_>,
    signature: NodeId,
    parent: NodeId,
    allow_sha1: bool,
) -> Result<(), Refused> {
    let signed_info = child(doc, signature, DSIG_NS, "SignedInfo")
        .ok_or_else(|| no("a signature has no SignedInfo"))?;
    let algorithm = |node: Option<NodeId>| node.and_then(|n| attr(doc, n, "Algorithm"));
    let c14n_node = child(doc, signed_info, DSIG_NS, "CanonicalizationMethod");
    if algorithm(c14n_node) != Some(EXC_C14N) {
        return Err(no("the signature's canonicalization is not exclusive C14N"));
    }
    if let Some(node) = c14n_node {
        check_c14n_parameters(doc, node)?;
    }
    let method = algorithm(child(doc, signed_info, DSIG_NS, "SignatureMethod")).unwrap_or("");
    if SHA1_SIGNATURES.contains(&method) {
        if !allow_sha1 {
            return Err(no("SHA-1 signatures are not allowed for this provider"));
        }
    } else if !STRONG_SIGNATURES.contains(&method) {
        return Err(no(format!(
            "the signature method {method:?} is not accepted"
        )));
    }
    let references: Vec<NodeId> = child_elements(doc, signed_info, DSIG_NS, "Reference").collect();
    let [reference] = references[..] else {
        return Err(no("a signature must have exactly one reference"));
    };
    let id = attr(doc, parent, "ID").ok_or_else(|| no("the signed element has no ID"))?;
    if attr(doc, reference, "URI").and_then(|u| u.strip_prefix('#')) != Some(id) {
        return Err(no("the signature does not reference the element it is in"));
    }
    if let Some(transforms) = child(doc, reference, DSIG_NS, "Transforms") {
        for t in doc.children(transforms) {
            if doc.element(t).is_none() {
                continue;
            }
            let ok = is(doc, t, DSIG_NS, "Transform")
                && matches!(attr(doc, t, "Algorithm"), Some(ENVELOPED | EXC_C14N));
            if !ok {
                return Err(no(
                    "a signature transform other than enveloped and exclusive C14N",
                ));
            }
            check_c14n_parameters(doc, t)?;
        }
    }
    let digest = algorithm(child(doc, reference, DSIG_NS, "DigestMethod")).unwrap_or("");
    if digest == SHA1_DIGEST {
        if !allow_sha1 {
            return Err(no("SHA-1 digests are not allowed for this provider"));
        }
    } else if !STRONG_DIGESTS.contains(&digest) {
        return Err(no(format!("the digest method {digest:?} is not accepted")));
    }
    Ok(())
}

/// Checks the signatures of a response: every signature is the direct
/// child of the response or of the assertion, is shaped as a SAML signature
/// is, and verifies with one of the IdP's certificates over exactly its
/// parent. Answers whether the response and the assertion are signed.
fn check_signatures(
    doc: &Document<'_>,
    response: NodeId,
    assertion: NodeId,
    expected: &Expected<'_>,
) -> Result<(bool, bool), Refused> {
    let signatures = descendants_named(doc, DSIG_NS, "Signature");
    let mut signed = (false, false);
    if signatures.is_empty() {
        return Err(no("neither the response nor its assertion is signed"));
    }
    for &signature in &signatures {
        let parent = doc.parent(signature);
        let slot = match parent {
            Some(p) if p == response && !signed.0 => &mut signed.0,
            Some(p) if p == assertion && !signed.1 => &mut signed.1,
            _ => return Err(no("a signature is in a place no SAML signature goes")),
        };
        *slot = true;
        check_signature_shape(
            doc,
            signature,
            parent.unwrap_or(response),
            expected.allow_sha1,
        )?;
    }
    let mut keys = bergshamra_keys::KeysManager::new();
    for der in &expected.idp.certificates {
        let key = bergshamra_keys::loader::load_x509_cert_der(der)
            .map_err(|e| no(format!("the IdP's certificate: {e}")))?;
        keys.add_key(key);
    }
    let ctx = bergshamra_dsig::DsigContext::new(keys);
    let results = bergshamra_dsig::verify::verify_all_document(&ctx, doc)
        .map_err(|e| no(format!("the signature does not verify: {e}")))?;
    if results.len() != signatures.len() {
        return Err(no("a signature was not checked"));
    }
    for result in results {
        match result {
            bergshamra_dsig::VerifyResult::Valid {
                signature_node,
                references,
                ..
            } => {
                let parent = doc.parent(signature_node);
                let covers_parent = matches!(
                    &references[..],
                    [only] if only.digest_verified && only.resolved_node.is_some() && only.resolved_node == parent
                );
                if !covers_parent {
                    return Err(no("a signature covers something other than its parent"));
                }
            }
            bergshamra_dsig::VerifyResult::Invalid { reason } => {
                return Err(no(format!("the signature does not verify: {reason}")));
            }
        }
    }
    Ok(signed)
}

/// Checks a SAML response as the Web Browser SSO profile and this SP's
/// profile say (see the module documentation), and reads its assertion.
pub fn check_response(xml: &str, expected: &Expected<'_>) -> Result<Assertion, Refused> {
    if xml.len() > MAX_DOCUMENT_BYTES {
        return Err(no("the SAMLResponse is too large"));
    }
    let doc = parse(xml)?;
    if doc.descendants(doc.root()).len() > MAX_NODES {
        return Err(no("the SAMLResponse has too many nodes"));
    }
    let response = doc
        .document_element()
        .filter(|r| is(&doc, *r, PROTOCOL_NS, "Response"))
        .ok_or_else(|| no("not a samlp:Response"))?;
    if attr(&doc, response, "Version") != Some("2.0") {
        return Err(no("not a SAML 2.0 response"));
    }
    // Which request this answers: one this login sent, never unsolicited.
    match attr(&doc, response, "InResponseTo") {
        Some(id) if id == expected.request_id => {}
        Some(_) => return Err(no("the response answers a request this login did not send")),
        None => {
            return Err(no(
                "an unsolicited response (no InResponseTo) is not accepted",
            ))
        }
    }
    let destination = attr(&doc, response, "Destination");
    if destination.is_some_and(|d| d != expected.sp.acs_url) {
        return Err(no("the response's Destination is not this ACS"));
    }
    if let Some(issuer) = child(&doc, response, ASSERTION_NS, "Issuer") {
        if text_of(&doc, issuer, "Issuer")? != expected.idp.entity_id {
            return Err(no("the response's Issuer is not the provider"));
        }
    }
    let status = child(&doc, response, PROTOCOL_NS, "Status")
        .and_then(|s| child(&doc, s, PROTOCOL_NS, "StatusCode"))
        .and_then(|c| attr(&doc, c, "Value"))
        .unwrap_or("");
    if status != SUCCESS {
        let short = status.rsplit(':').next().unwrap_or("");
        return Err(no(format!("the provider answered {short:?}")));
    }
    if !descendants_named(&doc, ASSERTION_NS, "EncryptedAssertion").is_empty() {
        return Err(no("encrypted assertions are not supported"));
    }
    let assertions = descendants_named(&doc, ASSERTION_NS, "Assertion");
    let [assertion] = assertions[..] else {
        return Err(no("a response must carry exactly one assertion"));
    };
    if doc.parent(assertion) != Some(response) {
        return Err(no("the assertion is not the response's own"));
    }
    let (response_signed, _) = check_signatures(&doc, response, assertion, expected)?;
    if response_signed && destination.is_none() {
        return Err(no("a signed response must name its Destination"));
    }
    read_assertion(&doc, assertion, expected)
}

fn read_assertion(
    doc: &Document<'_>,
    assertion: NodeId,
    expected: &Expected<'_>,
) -> Result<Assertion, Refused> {
    let (now, skew) = (expected.now, expected.skew);
    if attr(doc, assertion, "Version") != Some("2.0") {
        return Err(no("not a SAML 2.0 assertion"));
    }
    let id = attr(doc, assertion, "ID")
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .ok_or_else(|| no("the assertion has no ID"))?
        .to_owned();
    let issuer = child(doc, assertion, ASSERTION_NS, "Issuer")
        .ok_or_else(|| no("the assertion has no Issuer"))?;
    if text_of(doc, issuer, "Issuer")? != expected.idp.entity_id {
        return Err(no("the assertion comes from another provider"));
    }
    // Conditions: the time window and this SP as audience.
    let conditions = child(doc, assertion, ASSERTION_NS, "Conditions")
        .ok_or_else(|| no("the assertion has no Conditions"))?;
    let mut remember_until = now + skew;
    if let Some(nb) = time_attr(doc, conditions, "NotBefore")? {
        if now + skew < nb {
            return Err(no("the assertion is not valid yet"));
        }
    }
    match time_attr(doc, conditions, "NotOnOrAfter")? {
        Some(noa) if now >= noa + skew => return Err(no("the assertion has expired")),
        Some(noa) => remember_until = remember_until.max(noa + skew),
        None => {}
    }
    let restrictions: Vec<NodeId> =
        child_elements(doc, conditions, ASSERTION_NS, "AudienceRestriction").collect();
    if restrictions.is_empty() {
        return Err(no("the assertion names no audience"));
    }
    for restriction in restrictions {
        let mut ours = false;
        for audience in child_elements(doc, restriction, ASSERTION_NS, "Audience") {
            ours |= text_of(doc, audience, "Audience")? == expected.sp.entity_id;
        }
        if !ours {
            return Err(no("the assertion is for another audience"));
        }
    }
    // Subject: the NameID and a bearer confirmation for this ACS and request.
    let subject = child(doc, assertion, ASSERTION_NS, "Subject")
        .ok_or_else(|| no("the assertion has no Subject"))?;
    let name_id_node = child(doc, subject, ASSERTION_NS, "NameID")
        .ok_or_else(|| no("the assertion has no NameID"))?;
    let name_id = text_of(doc, name_id_node, "the NameID")?;
    if name_id.is_empty() || name_id.len() > 255 {
        return Err(no("the NameID is empty or too long"));
    }
    let mut confirmed = None;
    for confirmation in child_elements(doc, subject, ASSERTION_NS, "SubjectConfirmation") {
        if attr(doc, confirmation, "Method") != Some(BEARER) {
            continue;
        }
        let Some(data) = child(doc, confirmation, ASSERTION_NS, "SubjectConfirmationData") else {
            confirmed.get_or_insert(Err(no("the bearer confirmation has no data")));
            continue;
        };
        let outcome = confirm(doc, data, expected);
        if outcome.is_ok() || confirmed.is_none() {
            let done = outcome.is_ok();
            confirmed = Some(outcome);
            if done {
                break;
            }
        }
    }
    let confirmed_until =
        confirmed.ok_or_else(|| no("the assertion has no bearer confirmation"))??;
    remember_until = remember_until.max(confirmed_until);
    // The authentication: when it ends, and how it was done.
    let statement = child(doc, assertion, ASSERTION_NS, "AuthnStatement")
        .ok_or_else(|| no("the assertion has no AuthnStatement"))?;
    if let Some(end) = time_attr(doc, statement, "SessionNotOnOrAfter")? {
        if now >= end + skew {
            return Err(no("the provider's session has ended"));
        }
    }
    let authn_context = match child(doc, statement, ASSERTION_NS, "AuthnContext")
        .and_then(|c| child(doc, c, ASSERTION_NS, "AuthnContextClassRef"))
    {
        Some(node) => Some(text_of(doc, node, "AuthnContextClassRef")?),
        None => None,
    };
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in child_elements(doc, assertion, ASSERTION_NS, "AttributeStatement") {
        for attribute in child_elements(doc, statement, ASSERTION_NS, "Attribute") {
            let Some(name) = attr(doc, attribute, "Name").filter(|n| n.len() <= 256) else {
                continue;
            };
            let values = attributes.entry(name.to_owned()).or_default();
            for value in child_elements(doc, attribute, ASSERTION_NS, "AttributeValue") {
                values.push(text_of(doc, value, "an attribute value")?);
            }
        }
    }
    Ok(Assertion {
        id,
        name_id,
        name_id_format: attr(doc, name_id_node, "Format").map(str::to_owned),
        attributes,
        authn_context,
        remember_until,
    })
}

/// Checks a bearer `SubjectConfirmationData`; answers until when it holds.
fn confirm(doc: &Document<'_>, data: NodeId, expected: &Expected<'_>) -> Result<i64, Refused> {
    let (now, skew) = (expected.now, expected.skew);
    if attr(doc, data, "Recipient") != Some(expected.sp.acs_url) {
        return Err(no("the assertion's Recipient is not this ACS"));
    }
    if attr(doc, data, "InResponseTo") != Some(expected.request_id) {
        return Err(no(
            "the assertion answers a request this login did not send",
        ));
    }
    if let Some(nb) = time_attr(doc, data, "NotBefore")? {
        if now + skew < nb {
            return Err(no("the subject confirmation is not valid yet"));
        }
    }
    match time_attr(doc, data, "NotOnOrAfter")? {
        Some(noa) if now >= noa + skew => Err(no("the subject confirmation has expired")),
        Some(noa) => Ok(noa + skew),
        None => Err(no("the subject confirmation has no NotOnOrAfter")),
    }
}

const EMAIL_ATTRIBUTES: [&str; 4] = [
    "email",
    "mail",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
];
const NAME_ATTRIBUTES: [&str; 4] = [
    "name",
    "displayName",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
];

/// The assertion as claims for the claim mapping: `sub` is the `NameID`,
/// each attribute its values (a string when there is one), `email` and
/// `name` from their usual attribute names (or an email-format `NameID`)
/// unless an attribute of that name is given, and `amr` `["mfa"]` when the
/// authentication context names a second factor.
pub fn claims(assertion: &Assertion) -> Value {
    let mut out = Map::new();
    for (name, values) in &assertion.attributes {
        let value = match &values[..] {
            [one] => Value::String(one.clone()),
            many => json!(many),
        };
        out.insert(name.clone(), value);
    }
    let first = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| assertion.attributes.get(*n).and_then(|v| v.first()))
            .cloned()
    };
    let email = first(&EMAIL_ATTRIBUTES).or_else(|| {
        (assertion.name_id_format.as_deref() == Some(EMAIL_FORMAT))
            .then(|| assertion.name_id.clone())
    });
    if let Some(email) = email {
        out.insert("email".into(), email.into());
    }
    if let Some(name) = first(&NAME_ATTRIBUTES) {
        out.insert("name".into(), name.into());
    }
    out.insert("sub".into(), assertion.name_id.clone().into());
    let mfa = assertion
        .authn_context
        .as_deref()
        .is_some_and(|c| MFA_CONTEXTS.contains(&c));
    out.insert("amr".into(), if mfa { json!(["mfa"]) } else { json!([]) });
    Value::Object(out)
}
