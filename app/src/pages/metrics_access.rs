//! Who may read /metrics: whoever presents the bearer token (the config's
//! `metrics_token`, or the systemd credential `metrics-token`), or anyone if
//! `metrics_public` is set. The token is a credential, so where HTTPS exists it is taken
//! only over HTTPS (or a Unix socket, which never leaves the device).

use crate::config::{self, Config, ConfigError};

/// Who may read /metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Closed,
    Token(String),
    Public,
}

impl Access {
    /// Who may read /metrics by the config: its token, else the credential
    /// `metrics-token`; anyone if `metrics_public`.
    pub(crate) fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let token = match (&config.metrics_token, config::credential("metrics-token")?) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(token)) if token.len() < config::MIN_TOKEN_LENGTH => {
                let least = config::MIN_TOKEN_LENGTH;
                return Err(ConfigError(format!(
                    "the credential metrics-token is shorter than {least} characters"
                )));
            }
            (None, token) => token,
        };
        Ok(match (token, config.metrics_public) {
            (_, true) => Access::Public,
            (Some(token), false) => Access::Token(token),
            (None, false) => Access::Closed,
        })
    }
}

/// What a scrape gets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    Off,
    TokenNeeded,
    /// A token is configured and the request came over plain HTTP on the network;
    /// `leaked` if it carried the right token anyway.
    OverHttpsOnly {
        leaked: bool,
    },
}

impl Access {
    /// Whether a request with this Authorization header may scrape; `in_clear` if it came
    /// over plain HTTP on a network socket.
    pub(crate) fn check(&self, authorization: Option<&[u8]>, in_clear: bool) -> Verdict {
        let token_given = |token: &str| {
            authorization
                .and_then(|value| value.strip_prefix(b"Bearer "))
                .is_some_and(|given| constant_time_eq(given, token.as_bytes()))
        };
        match self {
            Access::Public => Verdict::Allowed,
            Access::Closed => Verdict::Off,
            Access::Token(token) if in_clear => Verdict::OverHttpsOnly { leaked: token_given(token) },
            Access::Token(token) if token_given(token) => Verdict::Allowed,
            Access::Token(_) => Verdict::TokenNeeded,
        }
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing of
/// how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::{Access, Verdict};

    #[test]
    fn only_the_right_bearer_token_is_let_in() {
        let access = Access::Token("s3cret-token".into());
        assert_eq!(access.check(Some(b"Bearer s3cret-token"), false), Verdict::Allowed);
        for wrong in [&b"Bearer s3cret-tokeN"[..], b"Bearer s3cret", b"Basic s3cret-token"] {
            assert_eq!(access.check(Some(wrong), false), Verdict::TokenNeeded);
        }
        assert_eq!(access.check(None, false), Verdict::TokenNeeded);
        assert_eq!(Access::Public.check(None, true), Verdict::Allowed);
        assert_eq!(Access::Closed.check(Some(b"Bearer "), false), Verdict::Off);
    }

    #[test]
    fn a_token_is_taken_only_over_https() {
        let access = Access::Token("s3cret-token".into());
        assert_eq!(access.check(Some(b"Bearer s3cret-token"), true), Verdict::OverHttpsOnly { leaked: true });
        assert_eq!(access.check(None, true), Verdict::OverHttpsOnly { leaked: false });
    }
}
