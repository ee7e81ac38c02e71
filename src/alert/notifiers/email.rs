//! The `email` notifier: one plain-text mail per message over SMTP (lettre, rustls).
//!
//! Subject `[lookout] <rule>: <title>`; the body has the title, authors, link, summary
//! and matched keywords. The Message-ID is derived from the idempotency key, so a mail
//! resent after a crash is recognisably the same mail.

use std::sync::OnceLock;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::NotifyErrorKind;

/// Longest subject, in characters, before it is cut with "…". RFC 5322 allows 998
/// octets on a line and lettre folds only between words, so a long title without
/// spaces made a line relays refuse (`500 Line too long`); and a mail client shows
/// far less than this anyway.
const MAX_SUBJECT_CHARS: usize = 200;
use crate::alert::message::Message;
use crate::config::Secret;

/// `kind = "email"`: the keys only an email notifier takes.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP host (not empty).
    pub host: String,
    /// SMTP port (default by `tls`: 587, 465 or 25).
    #[serde(default)]
    pub port: Option<u16>,
    /// Transport security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// A PEM file of CA certificates to trust besides the system's, for a relay whose
    /// certificate a private CA signed.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// SMTP user name.
    #[serde(default)]
    pub username: Option<Secret>,
    /// SMTP password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Sender address.
    pub from: String,
    /// Recipient addresses (at least one).
    pub to: Vec<String>,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption: only for a relay on localhost.
    None,
}

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub(super) struct Email {
    /// The configured transport, not yet connected.
    builder: lettre::transport::smtp::AsyncSmtpTransportBuilder,
    /// Built on first use: lettre's connection pool spawns a task, which needs the
    /// runtime, and notifiers are also built outside one (`lookout check`).
    transport: OnceLock<Transport>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for Email {
    // The builder holds the credentials; show only the addresses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// The CA certificates of a PEM file, refused when it holds none.
fn ca_certificates(path: &std::path::Path) -> Result<Certificate, NotifyErrorKind> {
    let refused = |why: &dyn std::fmt::Display| {
        NotifyErrorKind::config(format!("`ca_file` {}: {why}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| refused(&e))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(refused(&"no PEM certificate in it"));
    }
    Certificate::from_pem(&pem).map_err(|e| refused(&e))
}

impl Email {
    pub(super) fn new(
        config: &EmailConfig,
        timeout: std::time::Duration,
    ) -> Result<Email, NotifyErrorKind> {
        let invalid = NotifyErrorKind::config::<String>;
        let host = config.host.as_str();
        // What lettre's `starttls_relay` and `relay` build, with the configured CAs
        // added: the certificate must name `host` and chain to a trusted CA.
        let tls = || -> Result<TlsParameters, NotifyErrorKind> {
            let mut params = TlsParameters::builder(host.to_owned());
            if let Some(path) = &config.ca_file {
                params = params.add_root_certificate(ca_certificates(path)?);
            }
            params
                .build_rustls()
                .map_err(|e| invalid(format!("TLS setup for {host:?}: {e}")))
        };
        let plain = Transport::builder_dangerous(host);
        let mut builder = match config.tls {
            SmtpTls::Starttls => plain
                .port(config.port.unwrap_or(587))
                .tls(Tls::Required(tls()?)),
            SmtpTls::Tls => plain
                .port(config.port.unwrap_or(465))
                .tls(Tls::Wrapper(tls()?)),
            SmtpTls::None if config.ca_file.is_some() => {
                return Err(invalid(
                    "`ca_file` needs tls = \"starttls\" or \"tls\"".to_owned(),
                ))
            }
            SmtpTls::None => plain.port(config.port.unwrap_or(25)),
        };
        builder = builder.timeout(Some(timeout));
        match (&config.username, &config.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(
                    user.expose().to_owned(),
                    password.expose().to_owned(),
                ));
            }
            (None, None) => {}
            _ => return Err(invalid("`username` and `password` go together".to_owned())),
        }
        let from_text = config.from.as_str();
        let from: Mailbox = from_text
            .parse()
            .map_err(|e| invalid(format!("`from` {from_text:?}: {e}")))?;
        let to = config
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| invalid(format!("`to` {t:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Email {
            builder,
            transport: OnceLock::new(),
            from,
            to,
        })
    }

    pub(super) async fn send(&self, msg: &Message) -> Result<(), NotifyErrorKind> {
        let mut mail = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject(&msg.headline()))
            .message_id(Some(format!("<{}@lookout>", msg.idempotency_key)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            mail = mail.to(to.clone());
        }
        let mail = mail.body(msg.text()).map_err(NotifyErrorKind::Mail)?;
        let transport = self.transport.get_or_init(|| self.builder.clone().build());
        transport
            .send(mail)
            .await
            .map(|_| ())
            .map_err(NotifyErrorKind::Smtp)
    }
}

/// `[lookout] <headline>` on one line (control characters, line breaks included, become
/// spaces), cut to [`MAX_SUBJECT_CHARS`] on a character boundary with "…".
fn subject(headline: &str) -> String {
    let line: String = format!("[lookout] {headline}")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match line.char_indices().nth(MAX_SUBJECT_CHARS - 1) {
        Some((cut, _)) if line.chars().count() > MAX_SUBJECT_CHARS => {
            format!("{}…", line[..cut].trim_end())
        }
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_subject_is_cut_on_a_character_boundary() {
        let short = subject("rule: A title");
        assert_eq!(short, "[lookout] rule: A title");
        let long = subject(&format!("rule: {}", "é".repeat(2_000)));
        assert_eq!(long.chars().count(), MAX_SUBJECT_CHARS);
        assert!(long.ends_with("é…"), "{long}");
        let exact = "x".repeat(MAX_SUBJECT_CHARS - "[lookout] ".len());
        assert_eq!(subject(&exact).chars().count(), MAX_SUBJECT_CHARS);
        assert!(!subject(&exact).ends_with('…'));
        assert_eq!(subject("r: a\r\nBcc: x"), "[lookout] r: a  Bcc: x");
    }
}
