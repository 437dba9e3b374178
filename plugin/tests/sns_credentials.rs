//! SNS credentials from the usual AWS sources (the SDK's default chain) when the configuration names
//! none: a shared credentials file with a named profile, against moto's real SNS API; and a clear start-up
//! error when no source has any. Its own test binary: it sets process-wide environment variables.

#[path = "integration/util/mod.rs"]
mod util;

use stalwart_nta7516::challenge::sms;
use stalwart_nta7516::config::{SmsConfig, SmsMode};
use util::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_profile_file_and_a_clear_error_without_any() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        // The default profile is unusable (no secret): only the named profile can sign.
        "[default]\naws_access_key_id = AKIDDEFAULT\n\n\
         [gateway]\naws_access_key_id = AKIDGATEWAY\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();
    let empty = dir.path().join("config");
    std::fs::write(&empty, "").unwrap();
    // Only this binary's single test runs in this process: nothing else reads the environment now.
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        std::env::remove_var(k);
    }
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", &empty);
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &creds);
    std::env::set_var("AWS_PROFILE", "gateway");

    let conf = SmsConfig {
        mode: SmsMode::Sns,
        endpoint_url: Some(moto.url.clone()),
        sender_id: Some("Zorg".into()),
        ..SmsConfig::default()
    };
    let sender = sms::from_config(&conf)
        .await
        .expect("credentials from the profile");
    let phone = "+31633330001";
    let id = sender.send(phone, "Uw code: 123456").await.expect("sent");
    assert!(!id.is_empty());
    assert_eq!(moto.count_to(phone).await, 1);

    // No source has credentials: the gateway refuses to start, and says where it looked.
    std::fs::write(&creds, "").unwrap();
    let err = match sms::from_config(&conf).await {
        Ok(_) => panic!("started without credentials"),
        Err(e) => e,
    };
    assert!(err.contains("needs AWS credentials"), "{err}");
    assert!(err.contains("AWS_PROFILE"), "{err}");
}
