//! The `lookout` command line, defined once (clap derive) in the library, so the binary,
//! the man page and the shell completions all come from the same definitions.
//!
//! `main.rs` parses [`Cli`] and dispatches; [`completions`] and [`man_page`] render the
//! definitions for `lookout completions SHELL` and `lookout man`, which
//! `packaging/build-assets` runs to put both into the Debian package.

use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::config::{Config, NotifierKind, SourceKind};

/// Feed and alert daemon for listing pages that offer no usable feed.
#[derive(Parser, Debug)]
#[command(name = "lookout", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the daemon: watch and fetch sources, serve feeds, deliver alerts.
    Run {
        /// Config file; without it, the embedded defaults (drop folder ./drop, port 8080).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Take every source once (scan drop folders, fetch listing pages), ingest, deliver
    /// alerts, and exit.
    Once {
        /// Config file; without it, the embedded defaults.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate a config file and print what would run.
    Check {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Parse a saved page (or fetch a live one) and print its entries.
    ///
    /// With `--config` and `--source`, the page is read exactly as the daemon reads that
    /// source's pages: its format, its selectors, its URL as the base of relative links.
    /// Warnings (a selector that never matched, a `date_format` that read no date, a
    /// malformed document read up to its fault) are logged and listed under the table.
    Parse {
        /// The page: a file path, or an http(s) URL to fetch.
        page: String,
        /// Page format (default: the source's with `--source`, else detected from the content).
        #[arg(short, long, default_value = "auto")]
        format: String,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Config file holding the source named by `--source`.
        #[arg(short, long, requires = "source")]
        config: Option<PathBuf>,
        /// Read the page as this configured source does.
        #[arg(short, long, requires = "config")]
        source: Option<String>,
    },
    /// Ingest a folder of saved captures once, for a first fill of the feeds (no alerts).
    ///
    /// Into an empty store that nothing else has open, the database is built beside it
    /// and moved in at the end; an interrupted import then leaves the store as it was.
    Import {
        /// The folder of saved pages (read, never moved).
        dir: PathBuf,
        /// Source name to file the items under (default: the first folder source).
        #[arg(short, long)]
        source: Option<String>,
        /// Config file; without it, the embedded defaults.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Copy the SQLite store under `state_dir` into an empty PostgreSQL database, for
    /// replicas: items, identity keys, captures, fetch state and the outbox, so nothing
    /// becomes new again and no alert is sent twice. Stop lookout first.
    Migrate {
        /// The PostgreSQL database (`postgres://user:password@host/db`); also read from
        /// `LOOKOUT_MIGRATE_TO`, which keeps a password off the command line.
        #[arg(long, env = "LOOKOUT_MIGRATE_TO", hide_env_values = true)]
        to: String,
        /// Config file naming the `state_dir`; without it, the embedded defaults.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Alert rules and notifiers.
    Alert {
        /// What to do with alerts.
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Interests: papers like the ones you liked.
    Interest {
        /// What to do with interests.
        #[command(subcommand)]
        command: InterestCommand,
    },
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
}

/// `lookout alert ...`.
#[derive(Subcommand, Debug, PartialEq, Eq)]
pub enum AlertCommand {
    /// Send a test message through every notifier of a rule.
    Test {
        /// The rule's name.
        rule: String,
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
}

/// `lookout interest ...`.
#[derive(Subcommand, Debug, PartialEq, Eq)]
pub enum InterestCommand {
    /// Train an interest's model as the daemon does and print the stored items ranked
    /// by score, best first, with the terms that weighed most: to choose `min_score`.
    Rank {
        /// The interest's name.
        name: String,
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Rank only the items of this source.
        #[arg(short, long)]
        source: Option<String>,
        /// How many items to print.
        #[arg(short, long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The clap command tree (for completions, the man page and tests).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Writes the completion script for `shell` to `out`.
///
/// clap_complete panics when its writer fails (a closed pipe, say), so the script is
/// generated into memory first and written with an error the caller can report.
pub fn completions(shell: Shell, out: &mut impl Write) -> std::io::Result<()> {
    let mut cmd = command();
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)
}

/// Writes the `lookout(1)` man page, in roff, to `out`.
pub fn man_page(out: &mut impl Write) -> std::io::Result<()> {
    clap_mangen::Man::new(command()).render(out)
}

/// `lookout check`: builds what the config asks for without starting it (the
/// notifiers read their addresses and CA files; nothing is contacted), and says what
/// would run: every source with its kind, format and schedule, every rule with its
/// fields, sources, notifiers and digest, every notifier. [`Config::parse`] already
/// refused whatever else can fail later (URLs, selectors, regexes, date formats,
/// `${NAME}` references).
pub fn check(cfg: &Config) -> Result<String, crate::alert::NotifyError> {
    use std::fmt::Write as _;
    crate::alert::Notifiers::from_config(cfg)?;
    let mut out = String::new();
    let base = cfg.server.base();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "config ok\nstate_dir: {}", cfg.state_dir.display());
    // The URL is not shown: it may hold a password.
    let _ = match &cfg.store.url {
        Some(_) => writeln!(
            out,
            "store: PostgreSQL ([store] url), shared with any replicas; this one {}, \
             leases {}",
            cfg.store
                .replica_name()
                .map_or_else(|| "named host:pid".to_owned(), |n| format!("named {n}")),
            crate::config::HumanDuration(cfg.store.lease_period())
        ),
        None => writeln!(
            out,
            "store: SQLite, {}",
            cfg.state_dir.join("lookout.db").display()
        ),
    };
    let _ = writeln!(
        out,
        "server: listening on {}{}, feeds at {}/feed.xml",
        cfg.server.listen,
        if cfg.server.token.is_some() {
            " (token required)"
        } else {
            ""
        },
        base.trim_end_matches('/')
    );
    let _ = writeln!(
        out,
        "feed: {:?}, at most {} items",
        cfg.feed.title, cfg.feed.max_items
    );
    for s in &cfg.sources {
        let what = match &s.kind {
            SourceKind::Folder(f) => format!(
                "folder {} (after: {})",
                f.path.display(),
                format!("{:?}", f.after).to_lowercase()
            ),
            SourceKind::Http(h) => {
                let jitter = h.jitter.map_or_else(
                    || crate::sources::http::schedule::default_jitter(h.every.0),
                    |j| j.0,
                );
                format!(
                    "http {} every {} (+ up to {} jitter)",
                    h.url.get_ref(),
                    h.every,
                    humantime::format_duration(jitter)
                )
            }
        };
        let _ = writeln!(
            out,
            "source {}: {what}, format {}",
            s.name(),
            s.format.get_ref()
        );
    }
    for n in &cfg.notifiers {
        // Only what is safe to show: never a URL path, token or password.
        let what = match &n.kind {
            NotifierKind::Log => String::new(),
            NotifierKind::Webhook(w) => format!(
                " to {}/… ({})",
                w.url.url().origin().ascii_serialization(),
                format!("{:?}", w.template).to_lowercase()
            ),
            NotifierKind::Ntfy(t) => format!(" topic {}", t.topic),
            NotifierKind::Email(e) => format!(" via {} to {}", e.host, e.to.join(", ")),
            NotifierKind::Command(c) => format!(" runs {}", c.program.display()),
        };
        let _ = writeln!(out, "notifier {}: {}{what}", n.name(), n.kind.name());
    }
    for r in &cfg.alerts {
        // As the rules read it: no `notify` means the log, `notify = []` only the feed.
        let notify = match &r.notify {
            None => "log".to_owned(),
            Some(names) if names.is_empty() => "its feed only".to_owned(),
            Some(names) => names
                .iter()
                .map(|n| n.get_ref().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let fields = match &r.fields {
            Some(fields) if !fields.is_empty() => fields
                .iter()
                .map(|f| format!("{f:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(", "),
            _ => "title, summary, authors, source".to_owned(),
        };
        let sources = source_list(r.sources.as_deref());
        let digest = match r.digest {
            Some(d) => format!(", digest every {d}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "alert {}: any {:?} all {:?} none {:?} regex {:?} in {fields} of {sources} -> {notify}{digest}",
            r.name.get_ref(),
            r.any,
            r.all,
            r.none,
            r.regex.iter().map(|x| x.get_ref()).collect::<Vec<_>>(),
        );
    }
    for i in &cfg.interests {
        let notify = match i.notifiers() {
            names if names.is_empty() => "its feed only".to_owned(),
            names => names.join(", "),
        };
        let sources = source_list(i.sources.as_deref());
        let digest = match &i.digest {
            Some(d) => format!(", digest every {}", d.get_ref()),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "interest {}: likes {} ranks {sources}, min_score {:.3}, feed {}/interests/{}.xml -> {notify}{digest}",
            i.name(),
            i.likes_path().display(),
            i.threshold(),
            base.trim_end_matches('/'),
            i.name(),
        );
    }
    Ok(out)
}

/// The sources a rule or an interest names, as `check` shows them.
fn source_list(names: Option<&[toml::Spanned<String>]>) -> String {
    match names {
        Some(names) => names
            .iter()
            .map(|n| n.get_ref().as_str())
            .collect::<Vec<_>>()
            .join(", "),
        None => "every source".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("lookout").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"))
            .command
    }

    #[test]
    fn check_names_the_store_but_never_its_url() {
        let sqlite = Config::parse("state_dir = \"s\"\n", "t.toml").expect("config");
        assert!(check(&sqlite)
            .expect("check")
            .contains("store: SQLite, s/lookout.db"));
        let text = "[store]\nurl = \"postgres://lookout:pw-secret@db/lookout\"\n";
        let shared = Config::parse(text, "t.toml").expect("config");
        let said = check(&shared).expect("check");
        assert!(said.contains("store: PostgreSQL"), "{said}");
        assert!(!said.contains("pw-secret"), "{said}");
    }

    #[test]
    fn migrate_reads_its_target_from_the_flag() {
        assert_eq!(
            parse(&["migrate", "--to", "postgres://h/db"]),
            Command::Migrate {
                to: "postgres://h/db".into(),
                config: None
            }
        );
    }

    #[test]
    fn definitions_pass_clap_debug_asserts() {
        command().debug_assert();
    }

    #[test]
    fn existing_subcommands_parse_as_before() {
        assert_eq!(parse(&["run"]), Command::Run { config: None });
        assert_eq!(
            parse(&["run", "-c", "x.toml"]),
            Command::Run {
                config: Some("x.toml".into())
            }
        );
        assert_eq!(
            parse(&["check", "--config", "x.toml"]),
            Command::Check {
                config: "x.toml".into()
            }
        );
        assert_eq!(
            parse(&["parse", "page.txt", "--json"]),
            Command::Parse {
                page: "page.txt".into(),
                format: "auto".into(),
                json: true,
                config: None,
                source: None,
            }
        );
    }

    #[test]
    fn new_subcommands_parse() {
        assert_eq!(
            parse(&["once", "-c", "x.toml"]),
            Command::Once {
                config: Some("x.toml".into())
            }
        );
        assert_eq!(
            parse(&["import", "captures/"]),
            Command::Import {
                dir: "captures/".into(),
                source: None,
                config: None
            }
        );
        assert_eq!(
            parse(&["alert", "test", "diffusion", "-c", "x.toml"]),
            Command::Alert {
                command: AlertCommand::Test {
                    rule: "diffusion".into(),
                    config: "x.toml".into()
                }
            }
        );
        assert_eq!(
            parse(&["completions", "zsh"]),
            Command::Completions { shell: Shell::Zsh }
        );
        assert_eq!(parse(&["man"]), Command::Man);
    }

    #[test]
    fn check_requires_a_config() {
        assert!(Cli::try_parse_from(["lookout", "check"]).is_err());
    }

    #[test]
    fn bash_completions_mention_run_and_check() {
        let mut out = Vec::new();
        completions(Shell::Bash, &mut out).expect("write completions");
        let script = String::from_utf8(out).expect("UTF-8 script");
        assert!(script.contains("run"), "{script}");
        assert!(script.contains("check"), "{script}");
        assert!(
            script.contains("complete -F"),
            "a bash completion: {script}"
        );
    }

    #[test]
    fn every_shell_gets_a_completion_script() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let mut out = Vec::new();
            completions(shell, &mut out).expect("write completions");
            let script = String::from_utf8_lossy(&out);
            assert!(script.contains("import"), "{shell}: {script}");
        }
    }

    #[test]
    fn man_page_mentions_lookout_and_its_subcommands() {
        let mut out = Vec::new();
        man_page(&mut out).expect("write man page");
        let page = String::from_utf8(out).expect("UTF-8 roff");
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        assert!(page.contains(".TH lookout"), "{page}");
        for sub in ["run", "check", "parse", "import", "completions"] {
            assert!(page.contains(sub), "man page lacks {sub}: {page}");
        }
    }

    #[test]
    fn completions_report_a_failing_writer() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let err = completions(Shell::Bash, &mut Broken).expect_err("writer fails");
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
