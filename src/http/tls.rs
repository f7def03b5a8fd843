//! HTTPS: rustls over tokio, each connection served by hyper (axum::serve takes plain TCP
//! only). The certificate is re-read on SIGHUP without dropping connections; clients may
//! present a certificate (admins from `/api/admincerts/`, phones from their vendor's CA), whose
//! leaf reaches handlers as a [`PeerCertificate`] request extension.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{extract::Request, Router};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::app::App;
use crate::config::TlsConfig;

/// The client's certificate (its leaf, DER), as the TLS handshake verified it.
#[derive(Clone)]
pub struct PeerCertificate(pub Arc<Vec<u8>>);

/// Marks a request that came over TLS.
#[derive(Clone, Copy)]
pub struct OverTls;

/// The HTTPS listener's configuration, swapped whole on reload.
pub struct Tls {
    sources: Sources,
    current: std::sync::RwLock<Arc<rustls::ServerConfig>>,
}

/// Where the configuration is built from.
struct Sources {
    cfg: TlsConfig,
    data_dir: PathBuf,
    admin_ca: CertificateDer<'static>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Loads the certificate (generating a trial one on first start when none is configured)
    /// and the client CAs.
    pub async fn load(app: &App) -> anyhow::Result<Arc<Tls>> {
        let ca = crate::app::certs::admin_ca(&app.store, &app.cipher).await?;
        let admin_ca = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("admin CA: {e}"))?;
        let sources = Sources {
            cfg: app.cfg.tls.clone(),
            data_dir: app.cfg.data_dir.clone(),
            admin_ca,
        };
        let current = std::sync::RwLock::new(Arc::new(sources.build()?));
        Ok(Arc::new(Tls { sources, current }))
    }

    /// Re-reads the certificate and CAs; on error the old ones stay in use.
    pub fn reload(&self) -> anyhow::Result<()> {
        let next = Arc::new(self.sources.build()?);
        *self.current.write().expect("tls config") = next;
        Ok(())
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().expect("tls config").clone())
    }
}

impl Sources {
    fn files(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        if let (Some(c), Some(k)) = (&self.cfg.cert_file, &self.cfg.key_file) {
            return Ok((c.clone(), k.clone()));
        }
        let dir = self.data_dir.join("tls");
        let (cert, key) = (dir.join("self-signed.crt"), dir.join("self-signed.key"));
        if !cert.exists() || !key.exists() {
            crate::fsutil::private_dir(&dir)?;
            let (c, k) = crate::app::certs::self_signed_server(&self.cfg.self_signed_names)?;
            crate::fsutil::write_private(&key, k.as_bytes())?;
            crate::fsutil::write_private(&cert, c.as_bytes())?;
            tracing::warn!(
                cert = %cert.display(),
                "tls: generated a self-signed certificate for trials; set tls.cert_file and tls.key_file for production"
            );
        }
        Ok((cert, key))
    }

    fn build(&self) -> anyhow::Result<rustls::ServerConfig> {
        let (cert_path, key_path) = self.files()?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| anyhow::anyhow!("tls.cert_file {}: {e}", cert_path.display()))?;
        if chain.is_empty() {
            anyhow::bail!(
                "tls.cert_file {}: no certificate in it",
                cert_path.display()
            );
        }
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| anyhow::anyhow!("tls.key_file {}: {e}", key_path.display()))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = if self.cfg.client_certs {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.admin_ca.clone())?;
            for f in &self.cfg.phone_ca_files {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(f)
                    .and_then(|it| it.collect::<Result<_, _>>())
                    .map_err(|e| anyhow::anyhow!("tls.phone_ca_files {}: {e}", f.display()))?;
                if certs.is_empty() {
                    anyhow::bail!("tls.phone_ca_files {}: no certificate in it", f.display());
                }
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| anyhow::anyhow!("tls.phone_ca_files {}: {e}", f.display()))?;
                }
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .allow_unauthenticated()
            .build()?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| anyhow::anyhow!("tls: certificate and key do not go together: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Serves `router` over TLS on `listener` until `stop` turns true, then lets requests in
/// flight finish (bounded).
pub async fn serve(
    router: Router,
    listener: tokio::net::TcpListener,
    tls: Arc<Tls>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    // A client that opens a connection and sends its headers slowly (or never) is dropped.
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!("https accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let acceptor = tls.acceptor();
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // A client that never finishes its handshake does not hold a task for ever.
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "tls handshake: {e}");
                        return;
                    }
                    Err(_) => return,
                };
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| PeerCertificate(Arc::new(c.as_ref().to_vec())));
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req: Request = req.map(axum::body::Body::new);
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                    req.extensions_mut().insert(OverTls);
                    if let Some(c) = &cert {
                        req.extensions_mut().insert(c.clone());
                    }
                    let req = super::merge_slashes(req);
                    let mut router = router.clone();
                    async move {
                        use tower::Service;
                        router.call(req).await
                    }
                });
            let conn =
                builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, "https connection: {e}");
            }
        });
    }
    drop(listener);
    // Requests in flight get a while to finish; then the connections are dropped.
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
