//! Native TLS: loads the PEM certificate and key into a rustls server
//! configuration (aws-lc-rs provider, HTTP/1.1 and h2 by ALPN), reloads them
//! on demand without touching open connections, accepts TLS connections for
//! axum with handshakes off the accept loop, and makes the development CA and
//! certificate of `--tls-self-signed`.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::ServerConfig;
use time::OffsetDateTime;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, TlsSource};

/// A client that has not finished its handshake by then is dropped, so a
/// slow or silent peer cannot hold a connection slot.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Lifetime of the generated development certificates (the longest that
/// Apple platforms accept for a TLS server certificate).
const SELF_SIGNED_DAYS: i64 = 825;

/// A reused development certificate must stay valid at least this long;
/// otherwise a new CA and certificate are made at start.
const SELF_SIGNED_MIN_REMAINING: Duration = Duration::from_secs(30 * 86_400);

/// Marks requests that arrived on the native TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct NativeTls;

/// Why TLS could not be set up or reloaded. The message names the file and
/// what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("tls: {0}")]
pub struct TlsError(String);

/// The crypto provider of every TLS configuration here: aws-lc-rs, chosen
/// explicitly because other crates in the process enable ring as well.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM certificate chain (leaf first) and its private key into a
/// server configuration, checking that the key belongs to the certificate.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |path: &Path, what: &str| {
        fs::read(path).map_err(|e| {
            TlsError(format!(
                "cannot read the TLS {what} {}: {e}",
                path.display()
            ))
        })
    };
    let cert_pem = read(cert, "certificate")?;
    let key_pem = read(key, "private key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{}: not a PEM certificate: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) found",
            cert.display()
        )));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError(format!(
            "{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found: {e}",
            key.display()
        ))
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| {
            TlsError(format!(
                "{} and {} do not make a usable certificate and key: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS configuration in force, and the files it is read from. New
/// handshakes use whatever configuration is current when they start; a
/// connection keeps the one it was made with until it closes.
pub(crate) struct TlsReloader {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl TlsReloader {
    /// Loads the certificate and key for the first time.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<TlsReloader, TlsError> {
        let config = load_server_config(&cert, &key)?;
        Ok(TlsReloader {
            cert,
            key,
            current: RwLock::new(config),
        })
    }

    /// Reads the files again. On failure the previous certificate stays in
    /// force and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load_server_config(&self.cert, &self.key)?;
        *self.current.write() = config;
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }
}

/// The TLS set-up `config` asks for: `None` for plain HTTP. Fails with a
/// clear message on a missing file, bad PEM or a key that does not match.
pub(crate) fn setup(config: &Config) -> Result<Option<Arc<TlsReloader>>, TlsError> {
    let (cert, key) = match &config.tls {
        None => return Ok(None),
        Some(TlsSource::Files { cert, key }) => (cert.clone(), key.clone()),
        Some(TlsSource::SelfSigned(dir)) => {
            let files = ensure_self_signed(dir, &self_signed_names(config))?;
            tracing::warn!(
                ca = %files.ca.display(),
                "serving TLS with a self-signed development certificate; clients must trust \
                 the CA in {} (for example curl --cacert {})",
                files.ca.display(),
                files.ca.display()
            );
            (files.cert, files.key)
        }
    };
    Ok(Some(Arc::new(TlsReloader::load(cert, key)?)))
}

/// Reloads the certificate and key on every SIGHUP, for as long as the
/// process runs.
pub(crate) fn reload_on_sighup(tls: Arc<TlsReloader>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; TLS reload is unavailable");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: TLS reload failed; the previous certificate stays in use"
                ),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = tls;
}

/// The files of a development CA and the server certificate it signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    /// The CA certificate clients trust (`ca.pem`).
    pub ca: PathBuf,
    /// The server certificate (`server.pem`).
    pub cert: PathBuf,
    /// The server's private key (`server.key`, mode 0600).
    pub key: PathBuf,
}

impl SelfSigned {
    fn in_dir(dir: &Path) -> SelfSigned {
        SelfSigned {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }

    /// Whether the files exist, load, and the CA vouches for the server
    /// certificate for every name, for at least the next 30 days.
    fn fit(&self, names: &[String]) -> Result<(), String> {
        if !self.ca.exists() || !self.cert.exists() || !self.key.exists() {
            return Err("not created yet".into());
        }
        load_server_config(&self.cert, &self.key).map_err(|e| e.to_string())?;
        let ca = fs::read(&self.ca).map_err(|e| e.to_string())?;
        let ca = CertificateDer::from_pem_slice(&ca).map_err(|e| e.to_string())?;
        let leaf = fs::read(&self.cert).map_err(|e| e.to_string())?;
        let leaf = CertificateDer::from_pem_slice(&leaf).map_err(|e| e.to_string())?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).map_err(|e| e.to_string())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| e.to_string())?;
        let then = UnixTime::now()
            .as_secs()
            .saturating_add(SELF_SIGNED_MIN_REMAINING.as_secs());
        let then = UnixTime::since_unix_epoch(Duration::from_secs(then));
        for name in names {
            let server_name = ServerName::try_from(name.as_str())
                .map_err(|e| format!("{name}: {e}"))?
                .to_owned();
            verifier
                .verify_server_cert(&leaf, &[], &server_name, &[], then)
                .map_err(|e| format!("not valid for {name} in 30 days: {e}"))?;
        }
        Ok(())
    }
}

/// The names a development certificate covers: the loopback names, the
/// listen address unless it is a wildcard, and the issuer's host.
fn self_signed_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let listen = config.listen.ip();
    if !listen.is_unspecified() {
        names.push(listen.to_string());
    }
    if let Some(host) = url_host(&config.issuer) {
        names.push(host);
    }
    let mut unique = Vec::new();
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    unique
}

/// The host of an http(s) URL, when it is a name a certificate can hold.
fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    }
    .to_ascii_lowercase();
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => None,
        Ok(ip) => Some(ip.to_string()),
        Err(_) => ServerName::try_from(host.as_str()).is_ok().then_some(host),
    }
}

/// Returns the development CA and server certificate in `dir`, making them
/// on first use. Later calls reuse them while they fit `names` and stay
/// valid for 30 days; otherwise both are made anew (and clients must trust
/// the new CA). The CA's private key is never written anywhere: it signs
/// the one server certificate and is dropped, so trusting `ca.pem` cannot
/// vouch for anything else.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<SelfSigned, TlsError> {
    let files = SelfSigned::in_dir(dir);
    match files.fit(names) {
        Ok(()) => return Ok(files),
        Err(why) if files.ca.exists() => tracing::warn!(
            dir = %dir.display(),
            reason = %why,
            "making a new development CA and certificate; clients must trust the new CA"
        ),
        Err(_) => {}
    }
    let fail = |e: rcgen::Error| TlsError(format!("cannot make a development certificate: {e}"));
    let now = OffsetDateTime::now_utc();
    let not_before = now - time::Duration::days(1);
    let not_after = now + time::Duration::days(SELF_SIGNED_DAYS);

    let mut ca_params = CertificateParams::default();
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::OrganizationName, "Latchkey");
    ca_name.push(
        DnType::CommonName,
        format!("Latchkey development CA {}", now.unix_timestamp()),
    );
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(fail)?)
        .map_err(fail)?;

    let server_key = KeyPair::generate().map_err(fail)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(fail)?;
    let mut server_name = DistinguishedName::new();
    server_name.push(DnType::OrganizationName, "Latchkey");
    server_name.push(DnType::CommonName, "Latchkey development server");
    params.distinguished_name = server_name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&server_key, &ca).map_err(fail)?;

    create_private_dir(dir)?;
    write_file(&files.key, server_key.serialize_pem().as_bytes(), true)?;
    write_file(&files.cert, cert.pem().as_bytes(), false)?;
    write_file(&files.ca, ca.pem().as_bytes(), false)?;
    Ok(files)
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| TlsError(format!("cannot create {}: {e}", dir.display())))
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written certificate or key; `private` files get mode 0600.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    let fail = |e: io::Error| TlsError(format!("cannot write {}: {e}", path.display()));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A stale temporary file could carry wider permissions than wanted.
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(contents).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    }

    #[test]
    fn the_development_certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let first = ensure_self_signed(&tls, &names()).unwrap();
        let ca = fs::read(&first.ca).unwrap();
        let again = ensure_self_signed(&tls, &names()).unwrap();
        assert_eq!(first, again);
        assert_eq!(fs::read(&again.ca).unwrap(), ca, "the CA was kept");
        load_server_config(&again.cert, &again.key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&again.key), 0o600);
            assert_eq!(mode(&tls), 0o700);
        }
        let names: Vec<String> = fs::read_dir(&tls)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names.len(),
            3,
            "no CA key or temporary file left: {names:?}"
        );
    }

    #[test]
    fn a_new_name_or_a_broken_file_makes_a_new_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_self_signed(dir.path(), &names()).unwrap();
        let ca = fs::read(&first.ca).unwrap();
        let mut more = names();
        more.push("auth.test".into());
        let second = ensure_self_signed(dir.path(), &more).unwrap();
        let ca2 = fs::read(&second.ca).unwrap();
        assert_ne!(ca2, ca);
        second.fit(&more).unwrap();
        fs::write(&second.key, "not a key").unwrap();
        let third = ensure_self_signed(dir.path(), &more).unwrap();
        assert_ne!(fs::read(&third.ca).unwrap(), ca2);
        third.fit(&more).unwrap();
    }

    #[test]
    fn missing_files_bad_pem_and_a_foreign_key_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_self_signed(&dir.path().join("a"), &names()).unwrap();
        let b = ensure_self_signed(&dir.path().join("b"), &names()).unwrap();
        let missing = dir.path().join("missing.pem");
        let err = load_server_config(&missing, &a.key)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read the TLS certificate") && err.contains("missing.pem"),
            "{err}"
        );
        let junk = dir.path().join("junk.pem");
        fs::write(&junk, "hello").unwrap();
        let err = load_server_config(&junk, &a.key).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = load_server_config(&a.cert, &junk).unwrap_err().to_string();
        assert!(err.contains("no PEM private key"), "{err}");
        let err = load_server_config(&a.cert, &b.key).unwrap_err().to_string();
        assert!(
            err.contains("do not make a usable certificate and key"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_reload_keeps_the_previous_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure_self_signed(dir.path(), &names()).unwrap();
        let reloader = TlsReloader::load(files.cert.clone(), files.key.clone()).unwrap();
        let before = reloader.current.read().clone();
        fs::write(&files.cert, "garbage").unwrap();
        assert!(reloader.reload().is_err());
        assert!(Arc::ptr_eq(&before, &reloader.current.read()));
    }

    #[test]
    fn certificate_names_come_from_the_listen_address_and_the_issuer() {
        assert_eq!(
            url_host("https://Auth.Example:8443/x"),
            Some("auth.example".into())
        );
        assert_eq!(url_host("https://[::1]:8443"), Some("::1".into()));
        assert_eq!(url_host("http://0.0.0.0:8080"), None);
        assert_eq!(url_host("https://10.0.0.5"), Some("10.0.0.5".into()));
        let settings = crate::Settings {
            listen: Some("192.0.2.1:8443".parse().unwrap()),
            issuer: Some("https://auth.example".into()),
            tls_self_signed: Some(true),
            ..Default::default()
        };
        let config = Config::resolve(settings, Default::default()).unwrap();
        assert_eq!(
            self_signed_names(&config),
            ["localhost", "127.0.0.1", "::1", "192.0.2.1", "auth.example"]
        );
    }
}
