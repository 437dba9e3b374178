//! Peak memory of a large attachment: a real gateway (SQLite) holds a message with one attachment of
//! `--mb` MB (default 500) through its MTA hook over HTTP on loopback, then the recipient (portal
//! session) downloads it through `/p/{token}/b/{blob}`. The requests come from `curl` in a child
//! process, so the request body and the downloaded bytes are not in this process's memory; the figures
//! are this process's (the gateway's) peak RSS (`VmHWM`, reset through `/proc/self/clear_refs` before
//! each phase) and its RSS before the phase.
//!
//! Also measured: sealing the same bytes straight into a blob file (`BlobWriter`), which is what the
//! hook's step costs once the message arrives as a stream (the hook still reads its JSON body whole).
//!
//! Run: `cargo bench -p stalwart-nta7516 --bench large_attachment -- [--mb N]` (needs `curl`).

#[path = "../tests/integration/util/mod.rs"]
mod util;

use std::{io::Write, process::Command, time::Instant};

use stalwart_nta7516::{
    challenge::{self, Purpose},
    hold::blob::{BlobWriter, CHUNK},
    policy::TlsStatus,
    store::HoldState,
};
use util::{hook_request, Backend, Builder, TlsTable, TOKEN};

const RCPT: &str = "patient@portal.test";

/// `(VmRSS, VmHWM)` of this process, in MiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak (Linux: writing 5 to clear_refs); returns the RSS it starts from.
fn reset_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    rss().0
}

fn report(phase: &str, before: u64, started: Instant) {
    let (_, peak) = rss();
    println!(
        "{phase:<34} RSS before {before:>5} MiB, peak {peak:>5} MiB (+{:>4} MiB), {:.1} s",
        peak.saturating_sub(before),
        started.elapsed().as_secs_f64()
    );
}

/// Pseudo-random bytes, one chunk at a time (`i` = chunk number).
fn chunk(i: usize) -> Vec<u8> {
    let mut s = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..CHUNK)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// The hook request as a file: the JSON around `message.contents`, the base64 lines written chunk by
/// chunk. Returns the SHA-256 of the attachment.
fn write_request(path: &std::path::Path, chunks: usize) -> String {
    use base64::Engine;
    let body = "--b1\r\nContent-Type: text/plain\r\n\r\nDe scan.\r\n--b1\r\n\
                Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
                Content-Disposition: attachment; filename=\"scan.bin\"\r\n\r\n@@FILE@@--b1--\r\n";
    let req = hook_request(
        "arts@zorg.test",
        &[RCPT],
        &[
            ("From", "arts@zorg.test"),
            ("To", RCPT),
            ("Subject", "Scan"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "multipart/mixed; boundary=\"b1\""),
        ],
        body,
    );
    // Stalwart's `size` is the message's: the placeholder stands for the base64 lines.
    let total = chunks * CHUNK;
    let rest = total % 57;
    let b64_len = total / 57 * 78
        + if rest == 0 {
            0
        } else {
            rest.div_ceil(3) * 4 + 2
        };
    let mut req = req;
    let size = req["message"]["size"].as_u64().unwrap() as usize - "@@FILE@@".len() + b64_len;
    req["message"]["size"] = size.into();
    // Stalwart's member order: `message.headers` before `contents` (serde_json would sort them).
    let m = &req["message"];
    let json = format!(
        "{{\"context\":{},\"envelope\":{},\"message\":{{\"headers\":{},\"contents\":{},\"size\":{}}}}}",
        req["context"], req["envelope"], m["headers"], m["contents"], m["size"]
    );
    let (head, tail) = json.split_once("@@FILE@@").unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(head.as_bytes()).unwrap();
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    // 57 bytes per 76-character line: whole lines per 64 KiB chunk need a carry.
    let mut carry = Vec::new();
    for i in 0..chunks {
        let c = chunk(i);
        sha.update(&c);
        carry.extend_from_slice(&c);
        let whole = carry.len() / 57 * 57;
        let last = i + 1 == chunks;
        let take = if last { carry.len() } else { whole };
        for line in carry[..take].chunks(57) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(line);
            f.write_all(b64.as_bytes()).unwrap();
            f.write_all(b"\\r\\n").unwrap();
        }
        carry.drain(..take);
    }
    f.write_all(tail.as_bytes()).unwrap();
    f.flush().unwrap();
    hex::encode(sha.finish())
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "900"])
        .args(args)
        .output()
        .expect("curl is needed");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: usize = args
        .iter()
        .position(|a| a == "--mb")
        .map_or(500, |i| args[i + 1].parse().expect("--mb N"));
    let chunks = mb * 1024 * 1024 / CHUNK;
    let gw = Builder::new(Backend::Sqlite)
        .tls(TlsTable::new(&[("portal.test", TlsStatus::Unknown)]))
        .start()
        .await;
    let tmp = tempfile::tempdir().unwrap();
    println!(
        "large attachment of {mb} MiB, gateway on SQLite ({})",
        gw.addr
    );

    // 1. Sealing alone: the blob writer fed chunk by chunk.
    let before = reset_peak();
    let started = Instant::now();
    let mut w = BlobWriter::create(tmp.path(), "b-bench", &gw.gw.master)
        .await
        .unwrap();
    for i in 0..chunks {
        w.write(&chunk(i)).await.unwrap();
    }
    w.finish().await.unwrap();
    report("seal into a blob file", before, started);

    // 2. Holding through the hook (HTTP, JSON body with the whole message).
    let req = tmp.path().join("request.json");
    let sha = write_request(&req, chunks);
    let before = reset_peak();
    let started = Instant::now();
    let answer = curl(&[
        "-H",
        &format!("authorization: Bearer {TOKEN}"),
        "-H",
        "content-type: application/json",
        "--data-binary",
        &format!("@{}", req.display()),
        &format!("http://{}/v1/mta-hook", gw.addr),
    ]);
    report("hold (hook request to commit)", before, started);
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("hook answer");
    let id = util::held_ref(&answer);
    std::fs::remove_file(&req).unwrap();

    // 3. Downloading: the recipient verified (challenge and session made through the store).
    let blob = gw.gw.store.blobs_of(&id).await.unwrap().remove(0);
    let challenge_id = gw
        .gw
        .store
        .hold_challenge(&id, RCPT)
        .await
        .unwrap()
        .unwrap();
    // The worker's pass plans the notification, which stores the link token's hash.
    challenge::worker::pass(&gw.gw).await;
    let token = gw.gw.keys.link_token(Purpose::Recipient, &challenge_id);
    let c = challenge::by_token(&gw.gw.store, Purpose::Recipient, &token)
        .await
        .unwrap()
        .unwrap();
    let now = stalwart_nta7516::time::now();
    assert!(gw
        .gw
        .store
        .verify_challenge(&c, now + 86_400, now)
        .await
        .unwrap());
    // The release worker finds the domain not secure: the message is the recipient's on the portal.
    for (from, to) in [
        (HoldState::Releasing, HoldState::Sending),
        (HoldState::Sending, HoldState::Portal),
    ] {
        let moved = gw.gw.store.transition_hold(&id, RCPT, from, to, now);
        assert!(moved.await.unwrap(), "hold on the portal");
    }
    let cookie = challenge::random_token();
    let hash = challenge::token_hash(&cookie);
    gw.gw
        .store
        .new_session(&c, &hash, now + 3_600, None)
        .await
        .unwrap();
    let out = tmp.path().join("download.bin");
    let before = reset_peak();
    let started = Instant::now();
    curl(&[
        "-H",
        &format!("cookie: nta_session={cookie}"),
        "-o",
        &out.display().to_string(),
        &format!("http://{}/p/{token}/b/{}", gw.addr, blob.blob_id),
    ]);
    report("download (request to last byte)", before, started);
    let got = std::fs::read(&out).unwrap();
    assert_eq!(
        got.len(),
        chunks * CHUNK,
        "{}",
        String::from_utf8_lossy(&got[..got.len().min(2000)])
    );
    let got_sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &got));
    assert_eq!(got_sha, sha, "downloaded bytes differ");
    assert_eq!(blob.sha256, sha);
    println!("downloaded {} bytes, SHA-256 matches", got.len());
}
