//! A real HTTPS server (hyper + rustls) serving MTA-STS policies.
//!
//! [`start`] serves one policy as `text/plain`. [`start_policies`] serves a chosen answer per `Host`
//! (status, headers, body, chunked or not, or no answer at all), changeable while running, and
//! counts the requests for each host: what the conformance tests of RFC 8461 §3.3 and §5.1 need.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::pki::CertKey;

/// The well-known path of the policy (RFC 8461 §3.2).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// What the server answers at [`POLICY_PATH`] for one host.
#[derive(Debug, Clone)]
pub struct PolicyAnswer {
    /// HTTP status.
    pub status: u16,
    /// Header fields (`content-type` among them, or not).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Send the body in chunks of 4 KiB without a `content-length` (chunked transfer coding).
    pub chunked: bool,
    /// Accept the request and never answer (for fetch timeouts).
    pub stall: bool,
}

impl PolicyAnswer {
    /// `200 OK`, `content-type: text/plain`, `policy`.
    pub fn text(policy: &str) -> Self {
        Self::typed("text/plain", policy)
    }
    /// `200 OK` with this content type.
    pub fn typed(content_type: &str, policy: &str) -> Self {
        PolicyAnswer {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: policy.as_bytes().to_vec(),
            chunked: false,
            stall: false,
        }
    }
    /// A redirect (`status` 3xx) to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        PolicyAnswer {
            status,
            headers: vec![("location".into(), location.into())],
            body: vec![],
            chunked: false,
            stall: false,
        }
    }
}

/// A running server; stops when dropped.
pub struct TestHttps {
    /// Address.
    pub addr: SocketAddr,
    answers: Arc<Mutex<HashMap<String, PolicyAnswer>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    task: JoinHandle<()>,
}

impl Drop for TestHttps {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestHttps {
    /// Sets the answer for `host` (the `Host` header, without port).
    pub fn set(&self, host: &str, answer: PolicyAnswer) {
        self.answers
            .lock()
            .expect("answers")
            .insert(host.to_ascii_lowercase(), answer);
    }
    /// Requests for [`POLICY_PATH`] seen for `host`.
    pub fn hits(&self, host: &str) -> usize {
        let hits = self.hits.lock().expect("hits");
        hits.get(&host.to_ascii_lowercase()).copied().unwrap_or(0)
    }
}

/// Serves `policy` as `text/plain` at [`POLICY_PATH`] to every host (404 elsewhere).
pub fn start(listener: TcpListener, cert: CertKey, policy: String) -> TestHttps {
    let srv = start_policies(listener, cert);
    srv.set("*", PolicyAnswer::text(&policy));
    srv
}

/// A server with no answers yet ([`TestHttps::set`]; a host without an answer gets the one of
/// host `*`, else 404). `cert` should name every host it serves.
pub fn start_policies(listener: TcpListener, cert: CertKey) -> TestHttps {
    let addr = listener.local_addr().expect("addr");
    let cfg = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key())
        .expect("cert");
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let answers = Arc::new(Mutex::new(HashMap::new()));
    let hits = Arc::new(Mutex::new(HashMap::new()));
    let (a, h) = (answers.clone(), hits.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, a, h) = (acceptor.clone(), a.clone(), h.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let svc = service_fn(move |req| answer(req, a.clone(), h.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    TestHttps {
        addr,
        answers,
        hits,
        task,
    }
}

type Answers = Arc<Mutex<HashMap<String, PolicyAnswer>>>;
type Hits = Arc<Mutex<HashMap<String, usize>>>;

/// The response to one request.
async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    answers: Answers,
    hits: Hits,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase())
        .unwrap_or_default();
    let found = (req.uri().path() == POLICY_PATH)
        .then(|| {
            let answers = answers.lock().expect("answers");
            answers.get(&host).or_else(|| answers.get("*")).cloned()
        })
        .flatten();
    let Some(ans) = found else {
        let resp = Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::new()).boxed());
        return Ok(resp.expect("response"));
    };
    *hits.lock().expect("hits").entry(host).or_default() += 1;
    if ans.stall {
        std::future::pending::<()>().await;
    }
    let mut resp = Response::builder().status(ans.status);
    for (k, v) in &ans.headers {
        resp = resp.header(k, v);
    }
    let body = if ans.chunked {
        let chunks = ans.body.chunks(4096).map(Bytes::copy_from_slice).collect();
        Chunks(chunks).boxed()
    } else {
        Full::new(Bytes::from(ans.body)).boxed()
    };
    Ok(resp.body(body).expect("response"))
}

/// A body of unknown length (sent with chunked transfer coding).
struct Chunks(VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}
