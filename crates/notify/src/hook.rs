//! A webhook as configured ([`HookConfig`]) and as checked and ready ([`Webhook`]).

use std::fmt;
use std::time::Duration;

use openloom_core::{Hook, NoticeEvent};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};

/// The variable holding the signing secret of hooks that name no `secret_env`.
pub const SECRET_ENV: &str = "OPENLOOM_WEBHOOK_SECRET";

/// How long one attempt may take when the hook does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The body's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{event, deliveryId, at, sentAt, task}`, for programs.
    #[default]
    Json,
    /// `{"text": ...}`, which Slack- and Mattermost-style incoming webhooks post.
    Slack,
}

/// A hook as `config.yaml` (`webhooks:`) or `--webhook URL` gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Where to POST (`http://`, or `https://` in a build with the `https` feature).
    pub url: String,
    /// The events it wants; empty or absent means all.
    #[serde(default)]
    pub events: Vec<NoticeEvent>,
    /// The body's shape.
    #[serde(default)]
    pub format: Format,
    /// The variable holding this hook's secret, instead of [`SECRET_ENV`].
    #[serde(default)]
    pub secret_env: Option<String>,
    /// How long one attempt may take, in seconds (default 10).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl HookConfig {
    /// A hook for `url` with every default (what `--webhook URL` means).
    pub fn for_url(url: impl Into<String>) -> Self {
        HookConfig { url: url.into(), ..HookConfig::default() }
    }
}

/// A signing secret; never shown (its `Debug` is `***`).
#[derive(Clone)]
pub(crate) struct Secret(Vec<u8>);

impl Secret {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A hook checked and ready to send to. Its `Debug` shows the hook as the store
/// knows it (the URL without path or query, which may hold a token), never the
/// secret.
#[derive(Clone)]
pub struct Webhook {
    pub(crate) url: Url,
    pub(crate) hook: Hook,
    pub(crate) format: Format,
    pub(crate) secret: Secret,
    pub(crate) timeout: Duration,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("hook", &self.hook)
            .field("format", &self.format)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Checks `config` and reads its secret through `env` (the binary passes
    /// `std::env::var`; tests pass a map). Refuses a URL that is not `http(s)`, an
    /// `https` one in a build without TLS, and a hook without a secret, each with
    /// what to do.
    pub fn from_config(config: &HookConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let shown = Hook::shown_url(&config.url);
        let url = Url::parse(config.url.trim()).map_err(|e| Error::InvalidUrl {
            url: shown.clone(),
            reason: format!("does not parse: {e}"),
        })?;
        if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidUrl {
                url: shown,
                reason: "is not an http(s) URL; a webhook is POSTed to http:// or https://".into(),
            });
        }
        if url.scheme() == "https" && !cfg!(feature = "https") {
            return Err(Error::InvalidUrl {
                url: shown,
                reason: "needs TLS, which this build leaves out: build with `--features https` \
                         (`cargo build --release -p openloom --features https`), or send to \
                         a plain-HTTP receiver (e.g. a relay on loopback)"
                    .into(),
            });
        }
        let variable = config.secret_env.clone().unwrap_or_else(|| SECRET_ENV.to_owned());
        let secret = env(&variable).filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::MissingSecret { url: shown.clone(), variable: variable.clone() }
        })?;
        let timeout = match config.timeout_seconds {
            Some(0) => {
                return Err(Error::Invalid {
                    url: shown,
                    message: "timeout_seconds must be at least 1".into(),
                });
            }
            Some(seconds) => Duration::from_secs(seconds),
            None => DEFAULT_TIMEOUT,
        };
        Ok(Webhook {
            hook: Hook::new(url.as_str(), config.events.clone()),
            url,
            format: config.format,
            secret: Secret(secret.into_bytes()),
            timeout,
        })
    }

    /// The hook as the store knows it (id, shown URL, events).
    pub fn hook(&self) -> &Hook {
        &self.hook
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            SECRET_ENV => Some("s3cret".into()),
            "SLACK_SECRET" => Some("other".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn a_hook_takes_its_secret_from_the_named_variable() {
        let hook = Webhook::from_config(&HookConfig::for_url("http://127.0.0.1:9/in"), env)
            .expect("valid");
        assert_eq!(hook.secret.bytes(), b"s3cret");
        assert_eq!(hook.timeout, DEFAULT_TIMEOUT);
        let shown = format!("{hook:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("/in"), "{shown}");
        let config = HookConfig {
            secret_env: Some("SLACK_SECRET".into()),
            ..HookConfig::for_url("http://h/")
        };
        assert_eq!(Webhook::from_config(&config, env).expect("valid").secret.bytes(), b"other");
    }

    #[test]
    fn bad_hooks_are_refused_with_what_to_do() {
        let err = |config: HookConfig| {
            Webhook::from_config(&config, env).expect_err("refused").to_string()
        };
        for (name, config) in [("UNSET", "http://h/"), ("EMPTY", "http://h/")] {
            let config =
                HookConfig { secret_env: Some(name.into()), ..HookConfig::for_url(config) };
            let text = err(config);
            assert!(text.contains(name) && text.contains("openssl rand"), "{text}");
        }
        assert!(err(HookConfig::for_url("ftp://h/x")).contains("not an http(s) URL"));
        assert!(err(HookConfig::for_url("not a url")).contains("does not parse"));
        let zero = HookConfig { timeout_seconds: Some(0), ..HookConfig::for_url("http://h/") };
        assert!(err(zero).contains("at least 1"));
    }

    #[cfg(not(feature = "https"))]
    #[test]
    fn an_https_hook_without_tls_says_how_to_build_with_it() {
        let text = Webhook::from_config(
            &HookConfig::for_url("https://hooks.example/services/T0/B0/TOKEN"),
            env,
        )
        .expect_err("no TLS")
        .to_string();
        assert!(text.contains("--features https"), "{text}");
        assert!(!text.contains("TOKEN"), "the path may be a secret: {text}");
    }

    #[test]
    fn yaml_names_events_and_formats() {
        let config: HookConfig = serde_yaml_like(
            r#"{"url": "http://h/", "events": ["task.completed", "task.failed"], "format": "slack"}"#,
        );
        assert_eq!(config.events, [NoticeEvent::Completed, NoticeEvent::Failed]);
        assert_eq!(config.format, Format::Slack);
        let bad = serde_json::from_str::<HookConfig>(r#"{"url": "http://h/", "events": ["done"]}"#)
            .expect_err("unknown event");
        assert!(bad.to_string().contains("task.completed"), "{bad}");
    }

    fn serde_yaml_like(json: &str) -> HookConfig {
        serde_json::from_str(json).expect("parses")
    }
}
