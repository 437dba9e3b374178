//! A small client of Stalwart's management HTTP API: one request per connection (HTTP/1.1 over TCP, or
//! TLS when the URL is `https://`), HTTP Basic (the admin user and password) or a bearer token. It
//! returns the body of a 2xx answer; every other answer is an error that names the status.
//! [`super::settings`] (v0.15) and [`super::registry`] (v0.16) say what to ask and how to read it.

use std::{path::Path, sync::Arc, time::Duration};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, header, Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

/// How to authenticate.
#[derive(Clone)]
pub enum Auth {
    /// HTTP Basic: Stalwart's administrator (or fallback admin) and its password.
    Basic {
        user: String,
        password: String,
    },
    /// `Authorization: Bearer …` (an API key / OAuth token).
    Bearer(String),
    None,
}

impl Auth {
    /// From files, the way the gateway reads its other secrets (`crate::secrets::resolve`: trimmed,
    /// an empty file refused): a token file wins; else user + password file; else none.
    pub fn from_files(
        user: Option<&str>,
        password_file: Option<&Path>,
        token_file: Option<&Path>,
    ) -> Result<Auth, String> {
        let read = |what: &'static str, p: &Path| {
            crate::secrets::resolve(what, None, Some(p), false, || Err("not generated".into()))
                .map(|s| s.value)
                .map_err(|e| e.to_string())
        };
        Ok(match (user, password_file, token_file) {
            (_, _, Some(t)) => Auth::Bearer(read("the management token", t)?),
            (Some(user), Some(p), None) => Auth::Basic {
                user: user.to_string(),
                password: read("the management password", p)?,
            },
            _ => Auth::None,
        })
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { user, .. } => write!(f, "Basic({user}, ****)"),
            Auth::Bearer(_) => f.write_str("Bearer(****)"),
            Auth::None => f.write_str("None"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error("management URL {0}")]
    Url(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("{path}: HTTP {status} (user and password or token refused)")]
    Unauthorized { path: String, status: u16 },
    #[error("{path}: HTTP {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The management API of one Stalwart server.
#[derive(Clone, Debug)]
pub struct Management {
    https: bool,
    host: String,
    port: u16,
    base_path: String,
    auth: Auth,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl Management {
    /// `url` is Stalwart's HTTP listener, e.g. `http://127.0.0.1:8080` or `https://mail.example:443`.
    /// `ca_file`: PEM roots for an `https` URL instead of the Mozilla roots.
    pub fn new(
        url: &str,
        auth: Auth,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Management, ManagementError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| ManagementError::Url(format!("{url:?}: {e}")))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(ManagementError::Url(format!("{url:?}: not http(s)://"))),
        };
        let host = uri
            .host()
            .ok_or_else(|| ManagementError::Url(format!("{url:?}: no host")))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = https.then(|| tls_config(ca_file)).transpose()?;
        Ok(Management {
            https,
            host,
            port,
            base_path: uri.path().trim_end_matches('/').to_string(),
            auth,
            tls,
            timeout,
        })
    }

    /// `GET path` → the body of a 2xx answer.
    pub async fn get(&self, path: &str) -> Result<Vec<u8>, ManagementError> {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body → the body of a 2xx answer.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, ManagementError> {
        self.send(Method::POST, path, Some(body.to_string().into_bytes()))
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ManagementError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| ManagementError::Timeout(self.timeout))?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ManagementError> {
        let full_path = format!("{}{path}", self.base_path);
        let host_header = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut req = Request::builder()
            .method(method)
            .uri(&full_path)
            .header(header::HOST, &host_header)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        match &self.auth {
            Auth::Basic { user, password } => {
                let b64 =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                req = req.header(header::AUTHORIZATION, format!("Basic {b64}"));
            }
            Auth::Bearer(t) => req = req.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::None => {}
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ManagementError::Http(e.to_string()))?;
        let (status, bytes) = self.round_trip(req).await?;
        match status {
            200..=299 => Ok(bytes),
            401 | 403 => Err(ManagementError::Unauthorized {
                path: full_path,
                status,
            }),
            _ => Err(ManagementError::Status {
                path: full_path,
                status,
                body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            }),
        }
    }

    async fn round_trip(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(u16, Vec<u8>), ManagementError> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| ManagementError::Connect {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        match (&self.tls, self.https) {
            (Some(tls), true) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| ManagementError::Tls(format!("{}: {e}", self.host)))?;
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ManagementError::Tls(format!("{addr}: {e}")))?;
                http1(TokioIo::new(stream), req).await
            }
            _ => http1(TokioIo::new(tcp), req).await,
        }
    }
}

async fn http1<T>(io: T, req: Request<Full<Bytes>>) -> Result<(u16, Vec<u8>), ManagementError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| ManagementError::Http(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(http)?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(http)?.to_bytes();
    driver.abort();
    Ok((status, body.to_vec()))
}

/// The roots of the gateway's other Stalwart client (`stalwart_submit`): the CA file, else the
/// Mozilla roots; ring provider, safe protocol versions.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ManagementError> {
    let trust = match ca_file {
        Some(f) => crate::config::StalwartTrust::CaFile(f.to_path_buf()),
        None => crate::config::StalwartTrust::WebPki,
    };
    crate::stalwart_submit::client_config(&trust)
        .map(Arc::new)
        .map_err(|e| ManagementError::Tls(e.to_string()))
}
