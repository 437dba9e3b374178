//! `smtp_reply`: the bytes a hostile SMTP server sends, read by both SMTP clients — SmartTLS's probe
//! (greeting, EHLO, STARTTLS: `nta7516_smarttls::smtp::negotiate`) and the submission client's session
//! (greeting, EHLO, AUTH, one MAIL/RCPT/DATA transaction, QUIT: [`Session`]).

use std::{io::Cursor, time::Duration};

use nta7516_smarttls::smtp::{self as probe, SmtpError as ProbeError};

use super::block_on;
use crate::stalwart_submit::{Envelope, SendError, Session, SmtpError};

/// The longest reply the probe keeps: 100 lines of at most 4096 bytes.
const MAX_PROBE_REPLY: usize = 101 * 4096;

pub fn smtp_reply(data: &[u8]) {
    block_on(async {
        probe_session(data).await;
        submit_session(data).await;
    });
}

fn server(data: &[u8]) -> tokio::io::Join<Cursor<Vec<u8>>, tokio::io::Sink> {
    tokio::io::join(Cursor::new(data.to_vec()), tokio::io::sink())
}

async fn probe_session(data: &[u8]) {
    let timeout = Duration::from_secs(5);
    match probe::negotiate(server(data), "probe.example", timeout).await {
        Ok((stream, plain)) => {
            assert!(plain.ehlo_keywords.iter().any(|k| k == "STARTTLS"));
            assert!(plain
                .ehlo_keywords
                .iter()
                .all(|k| !k.is_empty() && !k.contains(char::is_whitespace)));
            assert!(!plain.banner.contains(['\r', '\n']));
            // Nothing after the 220 to STARTTLS was taken: the TLS handshake reads it. (A last line
            // without its LF, at the end of the stream, is a reply too.)
            let (rest, _) = stream.into_inner();
            let read = rest.position() as usize;
            assert!(
                read == data.len() || data[..read].ends_with(b"\n"),
                "read into the TLS bytes"
            );
        }
        Err(ProbeError::Timeout(step)) => panic!("in-memory reply timed out at {step}"),
        Err(e) => assert!(
            e.to_string().len() <= MAX_PROBE_REPLY + 200,
            "unbounded error"
        ),
    }
}

async fn submit_session(data: &[u8]) {
    let timeout = Duration::from_secs(5);
    let session = Session::over(server(data), "gw.example", timeout, "svc", "secret").await;
    let mut session = match session {
        Ok(s) => s,
        Err(SmtpError::Timeout) => panic!("in-memory reply timed out"),
        Err(_) => return,
    };
    let env = Envelope {
        from: "a@example.nl",
        to: "b@example.org",
        data: b"Subject: x\r\n\r\n.body\r\n",
    };
    match session.send(&env).await {
        Ok(id) => assert!(!id.contains(['\r', '\n']), "queue id {id:?}"),
        Err(SendError::Failed(e) | SendError::Uncertain(e)) => {
            assert!(
                !matches!(e, SmtpError::Timeout),
                "in-memory reply timed out"
            )
        }
    }
    session.quit().await;
}
