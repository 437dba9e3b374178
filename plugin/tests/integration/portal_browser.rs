//! The portal in real headless Chromium (Debian `chromium` + `chromedriver`), must-show 5: the recipient's
//! walk (landing → send code → wrong code → right code → messages → message) and the sender's phone page
//! (invalid number → error), in Dutch (by Accept-Language) and English (by the language switch), with a
//! screenshot of every page kept under `tests/artifacts/` (gitignored).

use crate::util;
use std::path::PathBuf;

use crate::util::{hook_request, Backend};
use crate::util::{link_in, webdriver::Chrome, Env, Moto, SENDER};
use stalwart_nta7516::policy::TlsStatus;

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/artifacts/portal")
}

struct Shots {
    lang: &'static str,
    n: usize,
}

impl Shots {
    async fn take(&mut self, chrome: &Chrome, name: &str) {
        self.n += 1;
        let path = artifacts().join(format!("{}-{:02}-{name}.png", self.lang, self.n));
        let png = chrome.screenshot(&path).await;
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        assert!(
            png.len() > 5_000,
            "{name}: screenshot looks empty ({} bytes)",
            png.len()
        );
        let source = chrome.source().await;
        assert!(
            !source.contains("<script"),
            "{name}: the portal uses no JavaScript"
        );
    }
}

/// Texts expected on each step, per language (the accessibility walk reads them too).
pub(crate) struct Texts {
    pub(crate) landing: &'static str,
    pub(crate) send: &'static str,
    pub(crate) code: &'static str,
    pub(crate) wrong: &'static str,
    pub(crate) confirmed: &'static str,
    pub(crate) read: &'static str,
    pub(crate) phone_error: &'static str,
    pub(crate) not_found: &'static str,
}

pub(crate) const NL: Texts = Texts {
    landing: "Er staat een beveiligd bericht voor u klaar",
    send: "Stuur mij een code",
    code: "Code uit de sms",
    wrong: "Deze code klopt niet",
    confirmed: "U bent bevestigd als ontvanger",
    read: "Lezen",
    phone_error: "Dit is geen geldig mobiel nummer",
    not_found: "Link niet gevonden",
};
pub(crate) const EN: Texts = Texts {
    landing: "A secure message is waiting for you",
    send: "Send me a code",
    code: "Code from the text message",
    wrong: "This code is not correct",
    confirmed: "You are confirmed as the recipient",
    read: ">Read<",
    phone_error: "This is not a valid mobile number",
    not_found: "Link not found",
};

async fn walk(lang: &'static str, t: &Texts) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let env = Env::new(Backend::Sqlite, Some(moto.url.clone()), "").await;
    env.tls.set("insecure.test", TlsStatus::Insecure);
    let gw = env.start().await;
    let (rcpt, phone) = ("eva.jansen@insecure.test", "+31633330001");
    gw.set_phone(rcpt, phone).await;
    let body = "Beste mevrouw Jansen,\r\n\r\nDe uitslag van uw bloedonderzoek is binnen: alle waarden zijn \
                normaal.\r\n\r\nMet vriendelijke groet,\r\nDr. A. Arts\r\n";
    gw.hook(&hook_request(
        SENDER,
        &[rcpt],
        &[
            ("From", "Dr. A. Arts <arts@zorg.test>"),
            ("To", rcpt),
            ("Subject", "Uitslag bloedonderzoek"),
            ("Message-ID", "<browser@zorg.test>"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ],
        body,
    ))
    .await;
    // A second recipient without a number: the sender's page.
    gw.hook(&hook_request(
        SENDER,
        &["nieuw@example.test"],
        &[
            ("From", SENDER),
            ("Subject", "x"),
            ("Message-ID", "<browser-2@zorg.test>"),
        ],
        "x\r\n",
    ))
    .await;
    let mails = env.notify.wait_for(2, 10).await;
    let notice = mails.iter().find(|m| m.rcpt_to == [rcpt]).unwrap();
    let ask = mails.iter().find(|m| m.rcpt_to == [SENDER]).unwrap();
    let link = link_in(&notice.data, "p");
    let sender_link = link_in(&ask.data, "s");

    let Some(chrome) = Chrome::start(if lang == "nl" { "nl-NL,nl" } else { "de-DE,de" }).await
    else {
        return;
    };
    let mut shots = Shots { lang, n: 0 };
    // Dutch comes from Accept-Language; English from the switch on the first page (remembered).
    if lang == "en" {
        chrome.goto(&format!("{link}?lang=en")).await;
    } else {
        chrome.goto(&link).await;
    }
    let src = chrome.source().await;
    assert!(src.contains(t.landing), "{src}");
    assert!(src.contains(&format!("lang=\"{lang}\"")));
    assert!(src.contains("+316•••••01"), "masked number shown");
    assert!(src.contains(t.send));
    shots.take(&chrome, "landing").await;

    chrome.click("button[type=submit]").await;
    chrome.wait_for(t.code, "/code").await;
    shots.take(&chrome, "code").await;

    let code = moto.last_code(phone).await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    chrome.type_into("#code", &wrong).await;
    chrome.click("button[type=submit]").await;
    chrome.wait_for(t.wrong, "/code").await;
    shots.take(&chrome, "wrong-code").await;

    chrome.type_into("#code", &code).await;
    chrome.click("button[type=submit]").await;
    chrome.wait_for(t.confirmed, "/messages").await;
    // The worker moves the hold to the portal; reload until it shows.
    util::eventually(10, "portal message listed", || async {
        chrome.goto(&format!("{link}/messages")).await;
        chrome.source().await.contains(t.read).then_some(())
    })
    .await;
    assert!(chrome.source().await.contains(t.confirmed));
    shots.take(&chrome, "messages").await;

    chrome.click("td a").await;
    chrome.wait_for("alle waarden zijn normaal", "").await;
    let src = chrome.source().await;
    assert!(src.contains("alle waarden zijn normaal"), "{src}");
    assert!(src.contains("Uitslag bloedonderzoek"));
    shots.take(&chrome, "message").await;

    chrome.goto(&sender_link).await;
    shots.take(&chrome, "sender-phone").await;
    chrome.type_into("#phone", "06-12345678").await;
    chrome.click("button[type=submit]").await;
    chrome.wait_for(t.phone_error, "").await;
    shots.take(&chrome, "sender-phone-error").await;
    assert_eq!(gw.phone("nieuw@example.test").await, None);

    chrome
        .goto(&format!("{}/p/{}", gw.url(""), "A".repeat(43)))
        .await;
    assert!(chrome.source().await.contains(t.not_found));
    shots.take(&chrome, "not-found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_in_chromium_dutch() {
    walk("nl", &NL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_in_chromium_english() {
    walk("en", &EN).await;
}
