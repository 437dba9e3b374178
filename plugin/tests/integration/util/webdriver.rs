//! A minimal W3C WebDriver client for Debian's `chromedriver` driving headless `chromium`: enough to open
//! pages, fill fields, click buttons, read the page and take screenshots.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::{free_port, http, which};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Chrome {
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Chrome {
    /// Starts chromedriver + headless Chromium. Missing: a failure under CI, a loud skip locally.
    pub async fn start(accept_language: &str) -> Option<Chrome> {
        let (Some(browser), Some(driver)) = (
            which("chromium").or_else(|| which("chromium-browser")),
            which("chromedriver"),
        ) else {
            if std::env::var("CI").is_ok() {
                panic!(
                    "CI is set but chromium/chromedriver are missing: run .ci/setup.d/challenge.sh"
                );
            }
            eprintln!("SKIPPED: chromium or chromedriver not found (run .ci/setup.d/challenge.sh)");
            return None;
        };
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = tokio::time::timeout(Duration::from_secs(2), async {
                let hyper_ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
                if !hyper_ok {
                    return false;
                }
                let (s, _, b) = http(Method::GET, &format!("{base}/status"), &[], vec![]).await;
                s == StatusCode::OK
                    && serde_json::from_slice::<Value>(&b)
                        .is_ok_and(|v| v["value"]["ready"] == true)
            })
            .await;
            if matches!(ready, Ok(true)) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": browser.display().to_string(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1000,800",
                     format!("--user-data-dir={}", profile.path().display()),
                     format!("--lang={accept_language}")],
            "prefs": {"intl.accept_languages": accept_language}
        }}}});
        let (s, _, b) = http(
            Method::POST,
            &format!("{base}/session"),
            &[("content-type", "application/json".into())],
            caps.to_string().into_bytes(),
        )
        .await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(s, StatusCode::OK, "new session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Some(Chrome {
            base: format!("{base}/session/{session}"),
            session,
            driver: child,
            _profile: profile,
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, _, b) = http(
            method,
            &format!("{}{path}", self.base),
            &[("content-type", "application/json".into())],
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        )
        .await;
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        assert_eq!(s, StatusCode::OK, "WebDriver {path}: {v}");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.call(Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until the page (after a click's navigation) contains `text` and its URL ends with `suffix`.
    pub async fn wait_for(&self, text: &str, suffix: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (src, url) = (self.source().await, self.url().await);
            if src.contains(text) && url.split('?').next().unwrap_or("").ends_with(suffix) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "page {url} never showed {text:?} / {suffix:?}: {src}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Chooses a local file in a file input (WebDriver sends the path as the element's value).
    pub async fn upload(&self, css: &str, path: &std::path::Path) {
        let e = self.find(css).await;
        self.call(
            Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": path.display().to_string()})),
        )
        .await;
    }

    /// A PNG screenshot of the viewport, saved to `path`; returns its bytes.
    pub async fn screenshot(&self, path: &PathBuf) -> Vec<u8> {
        use base64::Engine;
        let v = self.call(Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &png).unwrap();
        png
    }

    /// Runs `script` (a function body) in the page through WebDriver — not subject to the page's CSP —
    /// and returns its value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Like [`Chrome::execute`] for a script that calls its last argument when done.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.call(Method::POST, "/timeouts", Some(json!({"script": 60_000})))
            .await;
        self.call(
            Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Presses and releases each key of `keys` (WebDriver key codes, e.g. `"\u{E004}"` for Tab) on the
    /// keyboard, wherever the focus is: no element is clicked or targeted.
    pub async fn press(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|k| {
                let k = k.to_string();
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.call(
            Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    /// Sets the browser window's size in CSS pixels.
    pub async fn window_size(&self, width: u32, height: u32) {
        self.call(
            Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        // Ends the browser session (and Chromium) through the driver, then the driver itself.
        let url = self.base.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    http(Method::DELETE, &url, &[], vec![]),
                )
                .await;
            });
        })
        .join();
        let _ = self.session.len();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
