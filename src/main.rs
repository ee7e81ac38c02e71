//! The `lookout` command line: parse arguments, call the library. Thin on purpose.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::Parser;

use lookout::cli::{AlertCommand, Cli, Command, InterestCommand};
use lookout::config::Config;
use lookout::entry::Entry;
use lookout::parse::{self, ParseContext};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        // Printing commands end quietly when their reader goes away (`| head`), as
        // Unix tools do; the daemon keeps Rust's default of ignoring SIGPIPE.
        // SAFETY: setting a signal disposition before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    lookout::logging::init();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lookout: {}", lookout::logging::Chain(&*e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let cfg = load(config.as_deref())?;
            runtime()?.block_on(lookout::daemon::run(cfg, config))?;
        }
        Command::Check { config } => {
            let cfg = load(Some(&config))?;
            print!("{}", lookout::cli::check(&cfg)?);
        }
        Command::Once { config } => {
            let cfg = load(config.as_deref())?;
            let reports = run_to_end(lookout::daemon::once(cfg))??;
            let mut failed = 0;
            for r in &reports {
                println!(
                    "{}: {}{}",
                    r.source,
                    if r.ok { "" } else { "FAILED: " },
                    r.summary
                );
                failed += usize::from(!r.ok);
            }
            if failed > 0 {
                eprintln!("lookout: {failed} of {} sources failed", reports.len());
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Alert {
            command: AlertCommand::Test { rule, config },
        } => {
            let cfg = load(Some(&config))?;
            let results = runtime()?.block_on(lookout::alert::test_rule(&cfg, &rule))?;
            if results.is_empty() {
                println!("rule {rule} has no notifiers (feed only: /alerts/{rule}.xml)");
            }
            let mut failed = 0;
            for (notifier, result) in &results {
                match result {
                    Ok(()) => println!("{notifier}: ok"),
                    Err(e) => {
                        failed += 1;
                        println!("{notifier}: FAILED: {e}");
                    }
                }
            }
            if failed > 0 {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Parse {
            page,
            format,
            json,
            config,
            source,
        } => parse_command(&page, &format, json, config.as_deref(), source.as_deref())?,
        Command::Import {
            dir,
            source,
            config,
        } => {
            let cfg = load(config.as_deref())?;
            let summary = run_to_end(lookout::daemon::import(cfg, &dir, source))??;
            println!("{summary}");
            if summary.failed > 0 {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Interest {
            command:
                InterestCommand::Rank {
                    name,
                    config,
                    source,
                    limit,
                    json,
                },
        } => {
            let cfg = load(Some(&config))?;
            let ranked =
                lookout::daemon::interests::rank_stored(&cfg, &name, source.as_deref(), limit)?;
            let mut out = std::io::stdout().lock();
            for r in &ranked {
                if json {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                } else {
                    let terms: Vec<&str> = r.terms.iter().map(|(t, _)| t.as_str()).collect();
                    writeln!(
                        out,
                        "{:>7}  {:<60}  {}  [{}]{}",
                        lookout::alert::interest::shown_score(r.score),
                        truncate(&lookout::logging::escape_controls(&r.title), 60),
                        terms.join(", "),
                        r.sources.join(", "),
                        if r.liked {
                            "  liked (not in the feed)"
                        } else {
                            ""
                        }
                    )?;
                }
            }
        }
        Command::Migrate { to, config } => {
            let cfg = load(config.as_deref())?;
            let db = lookout::daemon::database_path(&cfg);
            anyhow::ensure!(db.exists(), "no SQLite store at {}", db.display());
            let store = lookout::store::Store::open(&db)
                .with_context(|| format!("opening {}", db.display()))?;
            let copied = store
                .migrate_to(&to)
                .context("copying the store into PostgreSQL")?;
            println!("{copied}");
        }
        Command::Completions { shell } => lookout::cli::completions(shell, &mut std::io::stdout())?,
        Command::Man => lookout::cli::man_page(&mut std::io::stdout())?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // SQLite calls, parsing, renders and file writes run here; a few threads are
    // plenty for one store.
    runtime_with_blocking(16)
}

fn runtime_with_blocking(max_blocking_threads: usize) -> Result<tokio::runtime::Runtime> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(max_blocking_threads)
        .build()
        .context("starting the async runtime")
}

/// Runs a command that ends by itself. Its tasks have all finished when it returns,
/// so the runtime's idle threads are left to the process exit instead of being woken
/// and joined one by one (a few ms of a `lookout once`).
///
/// Its blocking work is a burst of CPU-bound parses, ingests and renders: two threads
/// per core keep the cores busy, and more only cost thread starts and context
/// switches (see BENCHMARKS.md, "Figures behind code choices"). A daemon
/// keeps 16, for requests arriving while it ingests.
fn run_to_end<T>(work: impl std::future::Future<Output = T>) -> Result<T> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let runtime = runtime_with_blocking(2 * cores)?;
    let done = runtime.block_on(work);
    runtime.shutdown_background();
    Ok(done)
}

/// glibc gives every thread that allocates its own malloc arena, each keeping freed
/// memory; a long-running daemon with a thread pool then sits on several MB it does
/// not use. Two arenas are plenty for lookout (see BENCHMARKS.md, "Figures behind
/// code choices").
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn load(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default_config(),
    })
}

fn parse_command(
    page: &str,
    format: &str,
    json: bool,
    config: Option<&Path>,
    source: Option<&str>,
) -> Result<()> {
    // With a configured source: its format, selectors and URL, as the daemon reads it.
    let config = config.map(Config::load).transpose()?;
    let source = match (&config, source) {
        (Some(cfg), Some(name)) => Some(cfg.source(name).with_context(|| {
            let names: Vec<&str> = cfg
                .sources
                .iter()
                .map(|s| s.name.get_ref().as_str())
                .collect();
            format!(
                "no source {name:?} in the config (sources: {})",
                names.join(", ")
            )
        })?),
        _ => None,
    };
    let format = match source {
        Some(s) if format == "auto" => s.format.get_ref().as_str(),
        _ => format,
    };
    let source_url = source
        .and_then(|s| s.http())
        .map(|h| url::Url::parse(h.url.get_ref().expose()))
        .transpose()
        .context("the source's url")?;
    let (body, captured_at, url, content_type) =
        if page.starts_with("http://") || page.starts_with("https://") {
            let url = url::Url::parse(page).with_context(|| format!("invalid URL {page}"))?;
            let limits = lookout::sources::http::Limits::default();
            let fetched = runtime()?
                .block_on(lookout::sources::http::fetch_url(&url, &limits))
                .with_context(|| format!("fetching {page}"))?;
            (
                fetched.body,
                Utc::now(),
                Some(fetched.url),
                fetched.content_type,
            )
        } else {
            let path = Path::new(page);
            let body = std::fs::read(path).with_context(|| format!("reading {page}"))?;
            // A saved page's yearless dates resolve against the file's mtime.
            let captured_at: DateTime<Utc> = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| Utc::now());
            // A saved page of an HTTP source: its links resolve against the source's URL.
            (body, captured_at, source_url, None)
        };
    let ctx = ParseContext {
        captured_at,
        url: url.as_ref(),
        content_type: content_type.as_deref(),
        selectors: source.and_then(|s| s.selectors.as_ref()),
    };
    let parsed =
        parse::parse_page(&body, format, &ctx).with_context(|| format!("parsing {page}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        for e in &parsed.entries {
            writeln!(out, "{}", entry_json(e))?;
        }
    } else {
        write_table(&mut out, &parsed.entries)?;
        writeln!(
            out,
            "{} entries, format {}",
            parsed.entries.len(),
            parsed.format
        )?;
        // Also logged (stderr) by the parser, as in the daemon; repeated under the table
        // so a preview shows at a glance why a source would be degraded.
        for warning in &parsed.warnings {
            writeln!(out, "warning: {warning}")?;
        }
    }
    out.flush()?;
    if parsed.entries.is_empty() && !json {
        bail!("no entries found in {page}");
    }
    Ok(())
}

/// One entry as the JSON line `lookout parse --json` prints.
fn entry_json(e: &Entry) -> serde_json::Value {
    serde_json::json!({
        "key": e.key(),
        "title": e.title,
        "link": e.link,
        "summary": e.summary,
        "authors": e.authors,
        "author_count": e.author_count,
        "source": e.source,
        "published": e.published.as_ref().map(lookout::entry::timestamp_text),
        "listed": e.listed.as_ref().map(lookout::entry::timestamp_text),
        "arxiv_id": e.arxiv_id,
        "format": e.format,
    })
}

fn write_table(out: &mut impl Write, entries: &[Entry]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>3}  {:<10}  {:>7}  {:<24}  TITLE",
        "#", "PUBLISHED", "AUTHORS", "SOURCE"
    )?;
    for (i, e) in entries.iter().enumerate() {
        let published = e
            .published
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        let authors = e
            .author_count
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into());
        let source = truncate(e.source.as_deref().unwrap_or("-"), 24);
        writeln!(
            out,
            "{:>3}  {published:<10}  {authors:>7}  {source:<24}  {}",
            i + 1,
            truncate(&e.title, 90)
        )?;
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
