//! TLS for HTTPS (and WSS) and RTMPS: the certificate and key loaded into
//! rustls configurations, swapped whole on reload (`SIGHUP`), and the
//! handshake every TLS connection starts with.
//!
//! Each handshake takes the configuration current when its connection was
//! accepted; a reload only changes what later connections get, so no
//! connection is dropped or disturbed by it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The certificate files and the acceptors made from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Acceptors>,
}

/// One loading of the files, for each listener.
#[derive(Clone)]
struct Acceptors {
    https: TlsAcceptor,
    rtmps: TlsAcceptor,
}

impl Tls {
    /// Reads both files; the error names the one that failed and why.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        Ok(Tls {
            current: RwLock::new(acceptors(cert, key)?),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// For a new HTTPS connection: the certificate loaded now.
    pub fn https(&self) -> TlsAcceptor {
        self.current.read().https.clone()
    }

    /// For a new RTMPS connection: the certificate loaded now.
    pub fn rtmps(&self) -> TlsAcceptor {
        self.current.read().rtmps.clone()
    }

    /// Reads the files again. On any error the certificate in use stays
    /// (a half-written renewal must not take the server off the air).
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = acceptors(&self.cert, &self.key)?;
        *self.current.write() = fresh;
        Ok(())
    }

    /// [`Tls::reload`], with the outcome logged.
    pub fn reload_logged(&self) -> bool {
        match self.reload() {
            Ok(()) => {
                tracing::info!(
                    cert = %self.cert.display(),
                    "TLS certificate reloaded: new connections use it"
                );
                true
            }
            Err(e) => {
                tracing::error!("TLS reload failed, still serving the previous certificate: {e:#}");
                false
            }
        }
    }

    /// Reloads on every `SIGHUP` until the task is aborted. The handler is
    /// in place when this returns: a SIGHUP right after the start reloads
    /// rather than ends the process (the signal's default).
    pub fn reload_on_sighup(self: &Arc<Self>) -> JoinHandle<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let hangups = signal(SignalKind::hangup());
        let tls = self.clone();
        tokio::spawn(async move {
            let mut hangups = match hangups {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot listen for SIGHUP, TLS reload by signal is off: {e}");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the TLS certificate");
                tls.reload_logged();
            }
        })
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }
}

fn acceptors(cert: &Path, key: &Path) -> anyhow::Result<Acceptors> {
    let chain = read_chain(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    // The server speaks HTTP/1.1 only: a client asking for h2 alone is
    // refused at the handshake rather than misread after it.
    let mut https = server_config(chain.clone(), key_der.clone_key(), cert, key)?;
    https.alpn_protocols = vec![b"http/1.1".to_vec()];
    // RTMPS clients (ffmpeg, OBS) offer no ALPN; none is asked for.
    let rtmps = server_config(chain, key_der, cert, key)?;
    Ok(Acceptors {
        https: TlsAcceptor::from(Arc::new(https)),
        rtmps: TlsAcceptor::from(Arc::new(rtmps)),
    })
}

fn read_chain(cert: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let what = || format!("reading the TLS certificate {}", cert.display());
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(what)?
        .collect::<Result<Vec<_>, _>>()
        .with_context(what)?;
    anyhow::ensure!(
        !chain.is_empty(),
        "the TLS certificate {} holds no PEM certificate",
        cert.display()
    );
    Ok(chain)
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key_der: PrivateKeyDer<'static>,
    cert: &Path,
    key: &Path,
) -> anyhow::Result<ServerConfig> {
    // The provider named here, not the process default: nothing else in
    // the process may pick one for us.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .with_context(|| {
            format!(
                "the TLS certificate {} and key {} do not make a usable pair",
                cert.display(),
                key.display()
            )
        })
}

/// The TLS handshake of an accepted connection, finished by `deadline`
/// (the listener's own deadline for a request head or an RTMP setup, which
/// the handshake is part of). `None` when it failed or ran out of time:
/// the connection is then closed.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
    protocol: &'static str,
    timeout_reason: &'static str,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            // Scanners, plain-text clients, and browsers that do not trust
            // the certificate (worth seeing while setting up): counted,
            // and logged once a minute per client.
            tracing::debug!(%peer, protocol, "TLS handshake failed: {e}");
            crate::metrics::refused(
                protocol,
                "tls_handshake",
                Some(peer.ip()),
                format_args!("TLS handshake failed: {e}"),
            );
            None
        }
        Err(_) => {
            crate::metrics::refused(
                protocol,
                timeout_reason,
                Some(peer.ip()),
                format_args!("TLS handshake too slow"),
            );
            None
        }
    }
}
