//! A real HTTPS server (hyper + rustls) serving an MTA-STS policy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::pki::CertKey;

/// A running server; stops when dropped.
pub struct TestHttps {
    /// Address.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestHttps {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `policy` at `/.well-known/mta-sts.txt` (404 elsewhere).
pub fn start(listener: TcpListener, cert: CertKey, policy: String) -> TestHttps {
    let addr = listener.local_addr().expect("addr");
    let cfg = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key())
        .expect("cert");
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let policy = Bytes::from(policy);
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let policy = policy.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let policy = policy.clone();
                    async move {
                        let resp = if req.uri().path() == "/.well-known/mta-sts.txt" {
                            Response::builder()
                                .header("content-type", "text/plain")
                                .body(Full::new(policy))
                        } else {
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::new()))
                        };
                        Ok::<_, Infallible>(resp.expect("response"))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    TestHttps { addr, task }
}
