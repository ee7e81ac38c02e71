//! The `command` notifier: run a program with fixed arguments, never through a shell.
//!
//! The match arrives twice: as environment variables (`LOOKOUT_RULE`, `LOOKOUT_KEY`,
//! `LOOKOUT_TITLE`, `LOOKOUT_LINK`, `LOOKOUT_SUMMARY`, `LOOKOUT_AUTHORS`,
//! `LOOKOUT_SOURCE`, `LOOKOUT_PUBLISHED`, `LOOKOUT_MATCHED`, plus `LOOKOUT_FEED`,
//! `LOOKOUT_IDEMPOTENCY_KEY` and `LOOKOUT_COUNT`) and as the webhook JSON on standard
//! input. For a digest the single-valued variables describe the first item and
//! `LOOKOUT_COUNT` says how many there are; the full list is on stdin.
//!
//! The program inherits lookout's environment (PATH, HOME, ...) with these added.
//!
//! Exit status 0 is success; anything else is an error carrying the status and the
//! first line of standard error. The child is spawned with `kill_on_drop`, so when the
//! notifier's timeout drops the running future the program is killed.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::NotifyErrorKind;
use crate::alert::message::{truncate, Message};

/// `kind = "command"`: the keys only a command notifier takes.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Program to run (path or name on PATH, not empty), never through a shell.
    pub program: PathBuf,
    /// Arguments.
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug)]
pub(super) struct Command {
    program: PathBuf,
    args: Vec<String>,
}

impl Command {
    pub(super) fn new(config: &CommandConfig) -> Command {
        Command {
            program: config.program.clone(),
            args: config.args.clone(),
        }
    }

    pub(super) async fn send(&self, msg: &Message) -> Result<(), NotifyErrorKind> {
        let program = self.program.display().to_string();
        let stdin_bytes = serde_json::to_vec(&msg.to_json())
            .map_err(|e| NotifyErrorKind::config(format!("cannot serialize the message: {e}")))?;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .envs(environment(msg))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| NotifyErrorKind::Spawn {
            program: program.clone(),
            source,
        })?;
        let stdin = child.stdin.take();
        // Feed stdin while waiting: a child that fills its stderr pipe before reading
        // stdin would otherwise deadlock against us.
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A program that does not read its input closes the pipe early
                // (EPIPE); that is its choice, and its exit status decides the outcome.
                let _ = stdin.write_all(&stdin_bytes).await;
                let _ = stdin.shutdown().await;
            }
        };
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        let output = output.map_err(|source| NotifyErrorKind::Spawn {
            program: program.clone(),
            source,
        })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first_line = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        Err(NotifyErrorKind::Exit {
            program,
            status: output.status.to_string(),
            stderr: truncate(first_line, 300),
        })
    }
}

/// The `LOOKOUT_*` variables for a message. NUL bytes cannot be passed in the
/// environment, so they are dropped.
fn environment(msg: &Message) -> Vec<(&'static str, String)> {
    let clean = |s: &str| s.replace('\0', "");
    let mut env = vec![
        ("LOOKOUT_RULE", clean(&msg.rule)),
        ("LOOKOUT_FEED", clean(&msg.feed)),
        ("LOOKOUT_IDEMPOTENCY_KEY", clean(&msg.idempotency_key)),
        ("LOOKOUT_COUNT", msg.items.len().to_string()),
    ];
    if let Some(item) = msg.items.first() {
        env.extend([
            ("LOOKOUT_KEY", clean(&item.key)),
            ("LOOKOUT_TITLE", clean(&item.title)),
            ("LOOKOUT_LINK", clean(item.link.as_deref().unwrap_or(""))),
            ("LOOKOUT_SUMMARY", clean(&item.summary)),
            ("LOOKOUT_AUTHORS", clean(&item.authors.join(", "))),
            ("LOOKOUT_SOURCE", clean(&item.source)),
            (
                "LOOKOUT_PUBLISHED",
                item.published
                    .as_ref()
                    .map(crate::entry::timestamp_text)
                    .unwrap_or_default(),
            ),
            ("LOOKOUT_MATCHED", clean(&item.matched.join(", "))),
        ]);
    }
    env
}
