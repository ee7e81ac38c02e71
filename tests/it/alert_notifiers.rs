//! Notifiers against real local receivers: an HTTP server (wiremock) for webhook,
//! Slack, Discord and ntfy; an SMTP server written here over a tokio listener whose
//! received mail is parsed; real programs for the command notifier. Everything listens
//! on 127.0.0.1.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use lookout::alert::{Message, MessageItem, Notifiers, NotifyError, NotifyErrorKind};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn notifiers(text: &str) -> Notifiers {
    Notifiers::from_config(&config(text)).expect("notifiers build")
}

fn item(n: u32, title: &str) -> MessageItem {
    MessageItem {
        key: format!("arxiv:2401.0000{n}"),
        title: title.to_owned(),
        link: Some(format!("https://arxiv.org/abs/2401.0000{n}")),
        summary: "We study score-based diffusion & SDEs <in depth>.".to_owned(),
        authors: vec!["Ada Lovelace".to_owned(), "Grace Hopper".to_owned()],
        source: "hf".to_owned(),
        publisher: Some("arXiv".to_owned()),
        published: chrono::NaiveDate::from_ymd_opt(2024, 4, 17).map(lookout::entry::day_start),
        matched: vec!["diffusion".to_owned(), "sde*".to_owned()],
    }
}

fn single(title: &str) -> Message {
    Message {
        rule: "diffusion".to_owned(),
        feed: "http://127.0.0.1:8080/alerts/diffusion.xml".to_owned(),
        idempotency_key: "0123abcd".to_owned(),
        digest: false,
        items: vec![item(1, title)],
    }
}

fn digest() -> Message {
    Message {
        rule: "diffusion".to_owned(),
        feed: "http://127.0.0.1:8080/alerts/diffusion.xml".to_owned(),
        idempotency_key: "digest-feed".to_owned(),
        digest: true,
        items: vec![item(1, "First paper"), item(2, "Second paper")],
    }
}

fn header<'a>(req: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn ok_server() -> MockServer {
    answering(ResponseTemplate::new(200)).await
}

/// Sends `msg` through the configured notifier `name`.
async fn send(n: &Notifiers, name: &str, msg: &Message) -> Result<(), NotifyError> {
    n.get(name).expect("configured").send(msg).await
}

// ---------------------------------------------------------------- webhook

#[tokio::test]
async fn webhook_posts_json_with_idempotency_key_and_verifiable_hmac() {
    let server = ok_server().await;
    std::env::set_var("LOOKOUT_TEST_HOOK_SECRET", "s3cret-key");
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/hook\"\n\
         secret = \"${{LOOKOUT_TEST_HOOK_SECRET}}\"\nheaders = {{ X-Extra = \"yes\" }}\n",
        server.uri()
    ));
    let hook = n.get("hook").expect("configured");
    hook.send(&single("Score-based diffusion"))
        .await
        .expect("delivered");

    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.url.path(), "/hook");
    assert_eq!(header(req, "content-type"), Some("application/json"));
    assert_eq!(header(req, "idempotency-key"), Some("0123abcd"));
    assert_eq!(header(req, "x-extra"), Some("yes"));

    let signature = header(req, "x-lookout-signature").expect("signed");
    let hex_mac = signature.strip_prefix("sha256=").expect("sha256= prefix");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret-key").expect("any key length");
    mac.update(&req.body);
    mac.verify_slice(&hex::decode(hex_mac).expect("hex"))
        .expect("HMAC of the exact body verifies");

    let body: Value = req.body_json().expect("JSON body");
    assert_eq!(body["rule"], "diffusion");
    assert_eq!(body["key"], "arxiv:2401.00001");
    assert_eq!(body["title"], "Score-based diffusion");
    assert_eq!(body["link"], "https://arxiv.org/abs/2401.00001");
    assert_eq!(
        body["summary"],
        "We study score-based diffusion & SDEs <in depth>."
    );
    assert_eq!(body["authors"][1], "Grace Hopper");
    assert_eq!(body["source"], "hf");
    assert_eq!(body["published"], "2024-04-17");
    assert_eq!(body["matched"], serde_json::json!(["diffusion", "sde*"]));
    assert_eq!(body["feed"], "http://127.0.0.1:8080/alerts/diffusion.xml");
}

#[tokio::test]
async fn webhook_without_secret_sends_no_signature_and_digest_lists_items() {
    let server = ok_server().await;
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/\"\n",
        server.uri()
    ));
    send(&n, "hook", &digest()).await.expect("delivered");
    let requests = server.received_requests().await.expect("recording on");
    let req = &requests[0];
    assert!(req.headers.get("x-lookout-signature").is_none());
    assert_eq!(header(req, "idempotency-key"), Some("digest-feed"));
    let body: Value = req.body_json().expect("JSON body");
    assert_eq!(body["digest"], true);
    assert_eq!(body["count"], 2);
    assert_eq!(body["items"][1]["title"], "Second paper");
    assert_eq!(body["items"][0]["rule"], "diffusion");
}

#[tokio::test]
async fn slack_template_has_text_and_mrkdwn_blocks() {
    let server = ok_server().await;
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"slack\"\nkind = \"webhook\"\ntemplate = \"slack\"\nurl = \"{}/services/T/B/X\"\n",
        server.uri()
    ));
    send(&n, "slack", &single("A <b> & c"))
        .await
        .expect("delivered");
    let requests = server.received_requests().await.expect("recording on");
    let body: Value = requests[0].body_json().expect("JSON body");
    let text = body["text"].as_str().expect("text is a string");
    assert!(
        text.contains("<https://arxiv.org/abs/2401.00001|A &lt;b&gt; &amp; c>"),
        "{text}"
    );
    let blocks = body["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    let section = blocks[0]["text"]["text"].as_str().expect("section text");
    assert!(section.contains("Ada Lovelace, Grace Hopper"), "{section}");
    assert!(section.contains("SDEs &lt;in depth&gt;"), "{section}");
    assert_eq!(blocks.last().expect("context")["type"], "context");
    assert_eq!(header(&requests[0], "idempotency-key"), Some("0123abcd"));
}

#[tokio::test]
async fn discord_template_has_content_and_embeds() {
    let server = ok_server().await;
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"discord\"\nkind = \"webhook\"\ntemplate = \"discord\"\nurl = \"{}/api/webhooks/1/tok\"\n",
        server.uri()
    ));
    let discord = n.get("discord").expect("configured");
    discord.send(&single("Diffusion")).await.expect("delivered");
    discord.send(&digest()).await.expect("delivered");
    let requests = server.received_requests().await.expect("recording on");
    let one: Value = requests[0].body_json().expect("JSON body");
    assert_eq!(one["content"], "**lookout: diffusion: Diffusion**");
    assert_eq!(one["embeds"][0]["title"], "Diffusion");
    assert_eq!(one["embeds"][0]["url"], "https://arxiv.org/abs/2401.00001");
    let description = one["embeds"][0]["description"]
        .as_str()
        .expect("description");
    assert!(
        description.contains("score-based diffusion"),
        "{description}"
    );
    let two: Value = requests[1].body_json().expect("JSON body");
    assert_eq!(two["content"], "**lookout: diffusion: 2 new matches**");
    assert_eq!(two["embeds"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn non_2xx_is_an_error_with_status_and_retry_after_and_no_url() {
    let server = answering(ResponseTemplate::new(429).insert_header("Retry-After", "7")).await;
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/hook/TOKEN-IN-URL\"\n",
        server.uri()
    ));
    let err = send(&n, "hook", &single("x")).await.unwrap_err();
    assert!(
        matches!(err.kind, NotifyErrorKind::Status { status: 429, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("\"hook\"") && shown.contains("429"),
        "{shown}"
    );
    assert!(!shown.contains("TOKEN-IN-URL"), "{shown}");
}

/// A receiver's `Retry-After` is read in every HTTP-date form, by the same reader the
/// HTTP sources use (before, notifiers read RFC 2822 dates only).
#[tokio::test]
async fn retry_after_dates_in_every_http_form_are_read() {
    let in_a_minute = chrono::Utc::now() + chrono::Duration::seconds(60);
    for format in [
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    ] {
        let date = in_a_minute.format(format).to_string();
        let server =
            answering(ResponseTemplate::new(503).insert_header("Retry-After", date.as_str())).await;
        let n = notifiers(&format!(
            "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/hook\"\n",
            server.uri()
        ));
        let err = send(&n, "hook", &single("x")).await.unwrap_err();
        let wait = err
            .retry_after()
            .unwrap_or_else(|| panic!("{date}: not read"));
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{date}: {wait:?}"
        );
    }
}

#[tokio::test]
async fn connection_error_names_the_notifier_not_the_secret_url() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    std::env::set_var(
        "LOOKOUT_TEST_HOOK_URL",
        format!("http://127.0.0.1:{port}/T0KEN-SECRET"),
    );
    let n = notifiers(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"${LOOKOUT_TEST_HOOK_URL}\"\n",
    );
    let err = send(&n, "hook", &single("x")).await.unwrap_err();
    assert!(matches!(err.kind, NotifyErrorKind::Http(_)), "{err:?}");
    let mut shown = format!("{err} {err:?} {:?}", n.get("hook"));
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        shown.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(shown.contains("\"hook\""), "{shown}");
    assert!(!shown.contains("T0KEN-SECRET"), "{shown}");
}

// ---------------------------------------------------------------- ntfy

#[tokio::test]
async fn ntfy_publishes_json_with_title_tags_click_priority_and_token() {
    let server = ok_server().await;
    std::env::set_var("LOOKOUT_TEST_NTFY_TOKEN", "tk_abc");
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"phone\"\nkind = \"ntfy\"\nserver = \"{}\"\ntopic = \"papers\"\n\
         token = \"${{LOOKOUT_TEST_NTFY_TOKEN}}\"\ntags = [\"books\", \"tada\"]\npriority = 4\n",
        server.uri()
    ));
    send(&n, "phone", &single("Ärzte und Diffusion"))
        .await
        .expect("delivered");
    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.url.path(), "/");
    assert_eq!(header(req, "authorization"), Some("Bearer tk_abc"));
    let body: Value = req.body_json().expect("JSON body");
    assert_eq!(body["topic"], "papers");
    assert_eq!(body["title"], "diffusion: Ärzte und Diffusion");
    assert_eq!(body["tags"], serde_json::json!(["books", "tada"]));
    assert_eq!(body["priority"], 4);
    assert_eq!(body["click"], "https://arxiv.org/abs/2401.00001");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("https://arxiv.org/abs/2401.00001"),
        "{message}"
    );
    assert!(message.contains("Matched: diffusion, sde*"), "{message}");
}

#[tokio::test]
async fn ntfy_under_a_path_prefix_and_without_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/ntfy/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"phone\"\nkind = \"ntfy\"\nserver = \"{}/ntfy\"\ntopic = \"t\"\n",
        server.uri()
    ));
    send(&n, "phone", &digest()).await.expect("delivered");
    let requests = server.received_requests().await.expect("recording on");
    assert!(requests[0].headers.get("authorization").is_none());
    let body: Value = requests[0].body_json().expect("JSON body");
    assert_eq!(body["title"], "diffusion: 2 new matches");
    assert_eq!(body["click"], "http://127.0.0.1:8080/alerts/diffusion.xml");
    assert!(body.get("priority").is_none());
}

// ---------------------------------------------------------------- email

/// What the test SMTP server saw in one transaction.
#[derive(Debug)]
struct Received {
    auth: Option<String>,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: Vec<u8>,
    /// Whether the mail came over TLS.
    tls: bool,
}

/// How the test SMTP server offers TLS.
#[derive(Clone)]
enum ServerTls {
    None,
    /// Plain at first, STARTTLS advertised.
    StartTls(tokio_rustls::TlsAcceptor),
    /// TLS from the first byte (SMTPS).
    Wrapper(tokio_rustls::TlsAcceptor),
}

/// A connection the server speaks SMTP over, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A small SMTP server: EHLO (advertising AUTH PLAIN), AUTH, MAIL, RCPT, DATA, RSET,
/// NOOP, QUIT; every accepted mail goes to the channel. Serves until the test ends.
async fn smtp_server() -> (u16, mpsc::UnboundedReceiver<Received>) {
    smtp_server_with(ServerTls::None).await
}

/// [`smtp_server`], with TLS as `tls` says.
async fn smtp_server_with(tls: ServerTls) -> (u16, mpsc::UnboundedReceiver<Received>) {
    smtp_server_answering_rcpt(tls, "250 ok").await
}

/// [`smtp_server`], answering `RCPT TO` with `rcpt` (a 4xx or 5xx reply to refuse).
async fn smtp_server_answering_rcpt(
    tls: ServerTls,
    rcpt: &'static str,
) -> (u16, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (tx, tls) = (tx.clone(), tls.clone());
            let wrapped = matches!(tls, ServerTls::Wrapper(_));
            tokio::spawn(async move {
                let (conn, starttls): (Box<dyn Io>, _) = match tls {
                    ServerTls::None => (Box::new(socket), None),
                    ServerTls::StartTls(acceptor) => (Box::new(socket), Some(acceptor)),
                    ServerTls::Wrapper(acceptor) => match acceptor.accept(socket).await {
                        Ok(tls) => (Box::new(tls), None),
                        Err(_) => return,
                    },
                };
                smtp_session(conn, starttls, wrapped, rcpt, tx).await;
            });
        }
    });
    (port, rx)
}

/// One SMTP conversation; STARTTLS (when `starttls` is given) upgrades it in place.
/// Like a strict relay, it refuses a mail with a line over 998 octets (RFC 5322 2.1.1).
async fn smtp_session(
    conn: Box<dyn Io>,
    mut starttls: Option<tokio_rustls::TlsAcceptor>,
    mut over_tls: bool,
    rcpt: &'static str,
    tx: mpsc::UnboundedSender<Received>,
) {
    let rcpt_reply = format!("{rcpt}\r\n");
    let mut conn = BufReader::new(conn);
    if conn
        .write_all(b"220 127.0.0.1 ESMTP test\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut auth = None;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if starttls.is_some() {
                b"250-127.0.0.1\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
            } else {
                b"250-127.0.0.1\r\n250 AUTH PLAIN\r\n"
            }
        } else if upper == "STARTTLS" {
            let Some(acceptor) = starttls.take() else {
                return;
            };
            if conn.write_all(b"220 go ahead\r\n").await.is_err() {
                return;
            }
            // The client sends nothing more in plain text, so nothing is buffered.
            let Ok(tls) = acceptor.accept(conn.into_inner()).await else {
                return;
            };
            conn = BufReader::new(Box::new(tls));
            over_tls = true;
            continue;
        } else if upper.starts_with("AUTH PLAIN") {
            auth = Some(command[10..].trim().to_owned());
            b"235 2.7.0 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = command[10..].to_owned();
            rcpt_to.clear();
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            rcpt_to.push(command[8..].to_owned());
            rcpt_reply.as_bytes()
        } else if upper == "DATA" {
            if conn.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut data = Vec::new();
            let mut too_long = false;
            loop {
                let mut l = Vec::new();
                if conn.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                if l == b".\r\n" {
                    break;
                }
                too_long |= l.len() > 998 + 2;
                // Undo dot-stuffing.
                let l = if l.starts_with(b"..") {
                    l[1..].to_vec()
                } else {
                    l
                };
                data.extend_from_slice(&l);
            }
            if too_long {
                if conn
                    .write_all(b"500 5.5.0 Line too long\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            let _ = tx.send(Received {
                auth: auth.clone(),
                mail_from: mail_from.clone(),
                rcpt_to: rcpt_to.clone(),
                data,
                tls: over_tls,
            });
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            let _ = conn.write_all(b"221 bye\r\n").await;
            let _ = conn.flush().await;
            return;
        } else {
            // RSET, NOOP and anything else.
            b"250 ok\r\n"
        };
        if conn.write_all(answer).await.is_err() || conn.flush().await.is_err() {
            return;
        }
    }
}

/// A private CA and a certificate it signed for 127.0.0.1: the acceptor serving that
/// certificate, and the CA's PEM for the client to trust.
fn private_ca() -> (tokio_rustls::TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&key, &issuer)
        .expect("server certificate");
    (crate::common::tls_acceptor(&cert, &key), ca.pem())
}

/// Decodes standard base64 (for the AUTH PLAIN argument).
fn base64_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = alphabet
            .iter()
            .position(|a| *a == c)
            .expect("base64 character") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[tokio::test]
async fn email_is_delivered_over_smtp_and_parses_back() {
    let (port, mut mailbox) = smtp_server().await;
    std::env::set_var("LOOKOUT_TEST_SMTP_PASSWORD", "pa55word");
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"me\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\nusername = \"lookout\"\npassword = \"${{LOOKOUT_TEST_SMTP_PASSWORD}}\"\n\
         from = \"Lookout <lookout@example.org>\"\n\
         to = [\"me@example.org\", \"You <you@example.org>\"]\ntimeout = \"10s\"\n"
    ));
    let mut msg = single("Über Diffusion: a long title");
    msg.items[0].summary = "A summary line that is long enough to be wrapped by any mail \
        encoder that keeps lines short, and then some more words to be sure."
        .to_owned();
    send(&n, "me", &msg).await.expect("delivered");

    let got = tokio::time::timeout(Duration::from_secs(10), mailbox.recv())
        .await
        .expect("mail arrives in time")
        .expect("server running");
    let auth = base64_decode(got.auth.as_deref().expect("AUTH PLAIN sent"));
    assert_eq!(auth, b"\0lookout\0pa55word");
    assert_eq!(got.mail_from, "<lookout@example.org>");
    assert_eq!(got.rcpt_to, ["<me@example.org>", "<you@example.org>"]);

    let parsed = mail_parser::MessageParser::default()
        .parse(&got.data)
        .expect("a parsable message");
    assert_eq!(
        parsed.subject(),
        Some("[lookout] diffusion: Über Diffusion: a long title")
    );
    let from = parsed.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some("lookout@example.org"));
    assert_eq!(from.name(), Some("Lookout"));
    let to: Vec<&str> = parsed
        .to()
        .map(|a| a.iter().filter_map(|m| m.address()).collect())
        .unwrap_or_default();
    assert_eq!(to, ["me@example.org", "you@example.org"]);
    assert_eq!(parsed.message_id(), Some("0123abcd@lookout"));
    let body = parsed.body_text(0).expect("a text body");
    assert!(body.contains("https://arxiv.org/abs/2401.00001"), "{body}");
    assert!(body.contains("Ada Lovelace, Grace Hopper"), "{body}");
    assert!(
        body.contains("and then some more words to be sure."),
        "{body}"
    );
    assert!(body.contains("Matched: diffusion, sde*"), "{body}");
}

#[tokio::test]
async fn email_to_a_closed_port_is_an_smtp_error_without_the_password() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    std::env::set_var("LOOKOUT_TEST_SMTP_PASSWORD_2", "hunter2-pw");
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"me\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\nusername = \"u\"\npassword = \"${{LOOKOUT_TEST_SMTP_PASSWORD_2}}\"\n\
         from = \"a@example.org\"\nto = [\"b@example.org\"]\n"
    ));
    let err = send(&n, "me", &single("x")).await.unwrap_err();
    assert!(matches!(err.kind, NotifyErrorKind::Smtp(_)), "{err:?}");
    let shown = format!("{err} {err:?} {:?}", n.get("me"));
    assert!(!shown.contains("hunter2-pw"), "{shown}");
}

#[tokio::test]
async fn email_with_a_two_thousand_character_title_has_a_short_subject_and_no_long_line() {
    let (port, mut mailbox) = smtp_server().await;
    let n = email_to(port, "none", "").expect("a valid notifier");
    // One word of 2,000 characters: nothing for a folder to break at.
    let title = "Ü".repeat(1_000) + &"x".repeat(1_000);
    let mut msg = single(&title);
    msg.items[0].summary = "s".repeat(5_000);
    send(&n, "me", &msg)
        .await
        .expect("the relay takes the mail");
    let got = tokio::time::timeout(Duration::from_secs(10), mailbox.recv())
        .await
        .expect("mail arrives in time")
        .expect("server running");
    let longest = got.data.split(|b| *b == b'\n').map(<[u8]>::len).max();
    assert!(
        longest.unwrap_or(0) <= 998 + 1,
        "a line of {longest:?} octets"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&got.data)
        .expect("a parsable message");
    let subject = parsed.subject().expect("a subject");
    assert_eq!(subject.chars().count(), 200, "{subject}");
    assert!(subject.starts_with("[lookout] diffusion: ÜÜÜ"), "{subject}");
    assert!(subject.ends_with('…'), "{subject}");
    let body = parsed.body_text(0).expect("a text body");
    assert!(
        body.contains(&"s".repeat(5_000)),
        "the summary arrives whole"
    );
}

#[tokio::test]
async fn email_refused_with_5xx_is_permanent_and_with_4xx_is_not() {
    for (reply, permanent) in [
        ("550 5.1.1 no such mailbox", true),
        ("554 5.7.1 relay denied", true),
        ("451 4.3.0 try again later", false),
        ("452 4.2.2 mailbox full", false),
    ] {
        let (port, mut mailbox) = smtp_server_answering_rcpt(ServerTls::None, reply).await;
        let n = email_to(port, "none", "").expect("a valid notifier");
        let err = send(&n, "me", &single("A paper"))
            .await
            .expect_err("the relay refuses");
        assert!(matches!(err.kind, NotifyErrorKind::Smtp(_)), "{err:?}");
        assert_eq!(err.is_permanent(), permanent, "{reply}: {err}");
        assert!(mailbox.try_recv().is_err(), "nothing was accepted");
    }
    // Nothing answering at all is worth retrying too.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let n = email_to(closed, "none", "").expect("a valid notifier");
    let err = send(&n, "me", &single("A paper")).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
}

/// An email notifier to the test server at `port`, with `tls` and its extra lines.
fn email_to(port: u16, tls: &str, extra: &str) -> Result<Notifiers, NotifyError> {
    Notifiers::from_config(&config(&format!(
        "[[notifier]]\nname = \"me\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"{tls}\"\nusername = \"lookout\"\npassword = \"tls-secret-pw\"\n\
         from = \"a@example.org\"\nto = [\"b@example.org\"]\ntimeout = \"10s\"\n{extra}"
    )))
}

#[tokio::test]
async fn email_over_starttls_and_smtps_trusts_the_configured_private_ca() {
    let (acceptor, ca_pem) = private_ca();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let extra = format!("ca_file = {ca_file:?}\n");
    for (tls, server) in [
        ("starttls", ServerTls::StartTls(acceptor.clone())),
        ("tls", ServerTls::Wrapper(acceptor.clone())),
    ] {
        let (port, mut mailbox) = smtp_server_with(server).await;
        let n = email_to(port, tls, &extra).expect("a valid notifier");
        send(&n, "me", &single("Encrypted paper"))
            .await
            .unwrap_or_else(|e| panic!("tls = {tls}: {e}"));
        let got = tokio::time::timeout(Duration::from_secs(10), mailbox.recv())
            .await
            .expect("mail arrives in time")
            .expect("server running");
        assert!(got.tls, "tls = {tls}: the mail went over TLS");
        let auth = base64_decode(got.auth.as_deref().expect("AUTH PLAIN sent"));
        assert_eq!(auth, b"\0lookout\0tls-secret-pw");
        let parsed = mail_parser::MessageParser::default()
            .parse(&got.data)
            .expect("a parsable message");
        assert_eq!(
            parsed.subject(),
            Some("[lookout] diffusion: Encrypted paper")
        );
    }
}

#[tokio::test]
async fn email_to_a_relay_no_trusted_ca_signed_fails_and_sends_nothing_in_clear() {
    let (acceptor, _) = private_ca();
    let (port, mut mailbox) = smtp_server_with(ServerTls::StartTls(acceptor)).await;
    let n = email_to(port, "starttls", "").expect("a valid notifier");
    let err = send(&n, "me", &single("Not for eavesdroppers"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind, NotifyErrorKind::Smtp(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("UnknownIssuer"),
        "refused for its certificate: {shown}"
    );
    assert!(!shown.contains("tls-secret-pw"), "{shown}");
    assert!(
        mailbox.try_recv().is_err(),
        "no mail was handed over without TLS"
    );
}

#[test]
fn email_ca_file_is_checked_when_the_notifier_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just text").unwrap();
    let missing = dir.path().join("missing.pem");
    for (tls, file, says) in [
        ("starttls", &not_pem, "no PEM certificate"),
        ("tls", &missing, "missing.pem"),
        ("none", &not_pem, "needs tls"),
    ] {
        let err = email_to(25, tls, &format!("ca_file = {file:?}\n")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains(says), "tls = {tls}: {shown}");
    }
}

// ---------------------------------------------------------------- command

/// Writes an executable script. The command notifier execs it directly (the kernel
/// reads its `#!` line); lookout itself never goes through a shell.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Sends, retrying when exec fails with ETXTBSY: another test thread may fork while
/// our script's write handle is still open in the child, a known race of writing and
/// running a file in one multi-threaded process.
async fn send_command(n: &Notifiers, name: &str, msg: &Message) -> Result<(), NotifyError> {
    let notifier = n.get(name).expect("configured");
    for _ in 0..20 {
        match notifier.send(msg).await {
            Err(NotifyError {
                kind: NotifyErrorKind::Spawn { source, .. },
                ..
            }) if source.raw_os_error() == Some(26) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
    notifier.send(msg).await
}

fn toml_str(p: &Path) -> String {
    serde_json::to_string(&p.display().to_string()).expect("string")
}

#[tokio::test]
async fn command_gets_the_json_on_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("stdin.json");
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"tee\"\nkind = \"command\"\nprogram = \"tee\"\nargs = [{}]\n",
        toml_str(&out)
    ));
    send_command(&n, "tee", &single("Diffusion via tee"))
        .await
        .expect("ran");
    let written: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("tee wrote the file")).expect("JSON");
    assert_eq!(written["title"], "Diffusion via tee");
    assert_eq!(written["rule"], "diffusion");
    assert_eq!(written["link"], "https://arxiv.org/abs/2401.00001");
    assert_eq!(written["matched"], serde_json::json!(["diffusion", "sde*"]));
}

#[tokio::test]
async fn command_gets_env_vars_and_literal_args() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("seen.txt");
    let pwned = dir.path().join("pwned");
    let program = script(
        dir.path(),
        "record.sh",
        "out=\"$1\"; shift\n{ for a in \"$@\"; do printf 'arg=%s\\n' \"$a\"; done; \
         env | grep '^LOOKOUT_' | sort; } > \"$out\"",
    );
    let tricky = format!("$(touch {})", pwned.display());
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"cmd\"\nkind = \"command\"\nprogram = {}\n\
         args = [{}, {}, \"a b\", \"; echo hi\"]\n",
        toml_str(&program),
        toml_str(&out),
        serde_json::to_string(&tricky).expect("string"),
    ));
    let mut msg = single("Ärzte & diffusion");
    msg.items[0].summary = "One line summary".to_owned();
    send_command(&n, "cmd", &msg).await.expect("ran");
    let seen = std::fs::read_to_string(&out).expect("script wrote the file");
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(
        &lines[..3],
        [format!("arg={tricky}").as_str(), "arg=a b", "arg=; echo hi"]
    );
    assert!(!pwned.exists(), "arguments reached the program unexpanded");
    for expected in [
        "LOOKOUT_RULE=diffusion",
        "LOOKOUT_KEY=arxiv:2401.00001",
        "LOOKOUT_TITLE=Ärzte & diffusion",
        "LOOKOUT_LINK=https://arxiv.org/abs/2401.00001",
        "LOOKOUT_SUMMARY=One line summary",
        "LOOKOUT_AUTHORS=Ada Lovelace, Grace Hopper",
        "LOOKOUT_SOURCE=hf",
        "LOOKOUT_PUBLISHED=2024-04-17",
        "LOOKOUT_MATCHED=diffusion, sde*",
        "LOOKOUT_IDEMPOTENCY_KEY=0123abcd",
        "LOOKOUT_COUNT=1",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in {seen}");
    }
}

#[tokio::test]
async fn command_failure_reports_exit_status_and_first_stderr_line() {
    let n = notifiers(
        "[[notifier]]\nname = \"ls\"\nkind = \"command\"\nprogram = \"ls\"\n\
         args = [\"/nonexistent/lookout-test-path\"]\n",
    );
    let err = send_command(&n, "ls", &single("x")).await.unwrap_err();
    match &err.kind {
        NotifyErrorKind::Exit { status, stderr, .. } => {
            assert!(status.contains("exit status"), "{status}");
            assert!(stderr.contains("lookout-test-path"), "{stderr}");
        }
        other => panic!("expected an exit error, got {other:?}"),
    }
    let missing = notifiers(
        "[[notifier]]\nname = \"nope\"\nkind = \"command\"\nprogram = \"/nonexistent/lookout-prog\"\n",
    );
    let err = send_command(&missing, "nope", &single("x"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind, NotifyErrorKind::Spawn { .. }), "{err:?}");
}

#[tokio::test]
async fn hanging_command_is_killed_after_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let program = script(dir.path(), "hang.sh", "echo $$ > \"$1\"\nexec sleep 600");
    let n = notifiers(&format!(
        "[[notifier]]\nname = \"hang\"\nkind = \"command\"\nprogram = {}\nargs = [{}]\n\
         timeout = \"500ms\"\n",
        toml_str(&program),
        toml_str(&pid_file)
    ));
    let err = send_command(&n, "hang", &single("x")).await.unwrap_err();
    assert!(
        matches!(err.kind, NotifyErrorKind::Timeout { .. }),
        "{err:?}"
    );
    let pid = std::fs::read_to_string(&pid_file).expect("the script started");
    let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
    // Killed means gone, or a zombie until tokio reaps it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::read_to_string(&stat) {
            Err(_) => break,
            Ok(s)
                if s.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z')) =>
            {
                break
            }
            Ok(s) => {
                assert!(std::time::Instant::now() < deadline, "still running: {s}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

// ---------------------------------------------------------------- alert test

#[tokio::test]
async fn test_rule_sends_a_sample_through_each_notifier() {
    let server = ok_server().await;
    let config = config(&format!(
        "[server]\nbase_url = \"https://feeds.example.org\"\n\
         [[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/\"\n\
         [[alert]]\nname = \"diffusion\"\nany = [\"diffusion\", \"score-based\"]\n\
         notify = [\"hook\", \"log\"]\n",
        server.uri()
    ));
    let results = lookout::alert::test_rule(&config, "diffusion")
        .await
        .expect("the rule exists");
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["hook", "log"]);
    for (name, result) in &results {
        assert!(result.is_ok(), "{name}: {result:?}");
    }
    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1);
    let key = header(&requests[0], "idempotency-key").expect("key");
    assert!(key.starts_with("test-diffusion-hook-"), "{key}");
    let body: Value = requests[0].body_json().expect("JSON");
    assert_eq!(
        body["feed"],
        "https://feeds.example.org/alerts/diffusion.xml"
    );
    assert_eq!(
        body["matched"],
        serde_json::json!(["diffusion", "score-based"])
    );

    let err = lookout::alert::test_rule(&config, "nope")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("known: diffusion"), "{err}");
}
