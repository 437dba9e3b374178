//! SMS senders: AWS SNS (`[sms] mode = "sns"`) and the development log sink (`mode = "log"`).
//! A send error never touches a hold: the portal shows "try again later". Calls `config` and the AWS SDK.

use std::{sync::Arc, time::Duration};

use aws_config::{
    default_provider::credentials::DefaultCredentialsChain, provider_config::ProviderConfig,
};
use aws_sdk_sns::{
    config::{
        retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Credentials,
        ProvideCredentials, Region, SharedCredentialsProvider,
    },
    types::MessageAttributeValue,
    Client,
};

use crate::{
    config::{SmsConfig, SmsMode},
    policy::BoxFuture,
};

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("SMS provider refused the message: {0}")]
    Refused(String),
    #[error("SMS provider unreachable: {0}")]
    Unreachable(String),
}

pub trait SmsSender: Send + Sync + 'static {
    /// Sends `text` to `phone` (E.164). Returns the provider's message id.
    fn send<'a>(&'a self, phone: &'a str, text: &'a str)
        -> BoxFuture<'a, Result<String, SmsError>>;
    fn name(&self) -> &'static str;
}

pub async fn from_config(c: &SmsConfig) -> Result<Arc<dyn SmsSender>, String> {
    match c.mode {
        SmsMode::Log => Ok(Arc::new(LogSink)),
        SmsMode::Sns => Ok(Arc::new(Sns::new(c).await?)),
    }
}

/// Development only: the code goes to the log, announced loudly at start-up.
pub struct LogSink;

impl SmsSender for LogSink {
    fn send<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<String, SmsError>> {
        Box::pin(async move {
            tracing::warn!(
                phone,
                text,
                "DEVELOPMENT SMS (not sent; [sms] mode = \"log\")"
            );
            Ok(crate::ids::new_id("logsms"))
        })
    }
    fn name(&self) -> &'static str {
        "log"
    }
}

/// How long the start-up lookup of credentials from the AWS default chain may take (instance metadata
/// and container endpoints time out on machines that have none).
const CREDENTIALS_LOOKUP: Duration = Duration::from_secs(15);

fn no_credentials(why: &str) -> String {
    format!(
        "sms.mode = \"sns\" needs AWS credentials: sms.access_key_id/secret_access_key, \
         AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile (AWS_PROFILE, ~/.aws/credentials), a web \
         identity token, or a container/instance role; none found ({why})"
    )
}

/// AWS SNS `Publish` to a phone number, SMSType Transactional.
pub struct Sns {
    client: Client,
    sender_id: Option<String>,
}

impl Sns {
    pub async fn new(c: &SmsConfig) -> Result<Sns, String> {
        let secret = match (&c.secret_access_key, &c.secret_access_key_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("sms.secret_access_key_file {}: {e}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let credentials = match (c.access_key_id.clone(), secret) {
            (Some(id), Some(secret)) => SharedCredentialsProvider::new(Credentials::new(
                id,
                secret,
                None,
                None,
                "nta7516-config",
            )),
            (Some(_), None) | (None, Some(_)) => {
                return Err("sms.access_key_id and sms.secret_access_key go together".into())
            }
            (None, None) => {
                // The usual AWS sources, in the SDK's order: environment, shared config/credentials
                // files (AWS_PROFILE), web identity token (EKS), ECS container, EC2 instance role.
                let chain = DefaultCredentialsChain::builder()
                    .configure(
                        ProviderConfig::default()
                            .with_http_client(http.clone())
                            .with_region(Some(Region::new(c.region.clone()))),
                    )
                    .build()
                    .await;
                // Resolved once now, so a gateway without credentials says so at start, not at the
                // first SMS (the SDK caches and refreshes them afterwards).
                match tokio::time::timeout(CREDENTIALS_LOOKUP, chain.provide_credentials()).await {
                    Ok(Ok(_)) => tracing::info!("SNS credentials from the AWS default chain"),
                    Ok(Err(e)) => return Err(no_credentials(&e.to_string())),
                    Err(_) => return Err(no_credentials("lookup timed out")),
                }
                SharedCredentialsProvider::new(chain)
            }
        };
        let timeout = Duration::from_millis(c.timeout_ms);
        let mut conf = aws_sdk_sns::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(c.region.clone()))
            .credentials_provider(credentials)
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .operation_timeout(timeout * 2)
                    .build(),
            );
        if let Some(url) = &c.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        Ok(Sns {
            client: Client::from_conf(conf.build()),
            sender_id: c.sender_id.clone(),
        })
    }
}

fn attr(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data_type is set")
}

impl SmsSender for Sns {
    fn send<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<String, SmsError>> {
        Box::pin(async move {
            let mut req = self
                .client
                .publish()
                .phone_number(phone)
                .message(text)
                .message_attributes("AWS.SNS.SMS.SMSType", attr("Transactional"));
            if let Some(id) = &self.sender_id {
                req = req.message_attributes("AWS.SNS.SMS.SenderID", attr(id));
            }
            match req.send().await {
                Ok(out) => Ok(out.message_id().unwrap_or_default().to_string()),
                Err(e) => {
                    use aws_sdk_sns::error::SdkError;
                    let detail = aws_sdk_sns::error::DisplayErrorContext(&e).to_string();
                    Err(match e {
                        SdkError::ServiceError(_) => SmsError::Refused(detail),
                        _ => SmsError::Unreachable(detail),
                    })
                }
            }
        })
    }
    fn name(&self) -> &'static str {
        "sns"
    }
}
