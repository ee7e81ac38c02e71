//! The text capture: what select-all, copy, paste of a Daily Papers page gives.

use chrono::NaiveDate;

use super::NAME;
use crate::entry::{clean_join, clean_text, day_start, Entry};
use crate::parse::text::{self, is_prose, paragraphs};
use crate::parse::{dates, ParseContext, ParseError};

/// Lines of the page chrome that a select-all capture picks up. Matched whole and
/// case-insensitively; a capture without some of them parses the same.
const BOILERPLATE: &[&str] = &[
    "new",
    "get trending papers in your email inbox!",
    "subscribe",
    "daily papers",
    "byak and the research community",
    "by ak and the research community",
    "trending papers",
    "upvote",
    "upvoted",
    "submitted by",
    "previous",
    "next",
    "search",
    "view all",
    "see all",
];

/// Lines that only a Daily Papers capture has; any one of them identifies the site.
const MARKERS: &[&str] = &[
    "get trending papers in your email inbox!",
    "byak and the research community",
    "by ak and the research community",
    "daily papers",
];

/// Parses a text capture of a Daily Papers (or search / trending) page.
///
/// Works on structure, not on the exact header: the capture is split into paragraphs;
/// a paragraph of "N authors", "·", date, count and "Submitted by" lines is a meta
/// block; a short single line is a title, long prose a summary. Each title opens an
/// entry, the next prose paragraph is its summary, a meta block fills its author count
/// and date. An entry without a meta block (or without a summary) keeps those fields
/// empty and is never merged into its neighbour. Lines before the first real entry
/// (the page header, its date "May 20") and lone lines with neither summary nor meta
/// (navigation, footer) are not entries.
pub fn parse_text(text: &str, ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
    let reference = ctx.reference_date();
    let blocks = text_blocks(text, reference);
    let drafts = assemble(blocks);
    let entries: Vec<Entry> = drafts.into_iter().map(Draft::into_entry).collect();
    if entries.is_empty() {
        return Err(ParseError::Malformed {
            format: NAME,
            reason: "no paper entries found in the text capture".into(),
        });
    }
    Ok(entries)
}

/// A text page's entries when it is a Daily Papers capture: a site marker line or an
/// "N authors" line, and at least one entry when parsed.
pub(super) fn recognize(text: &str, ctx: &ParseContext<'_>) -> Option<Vec<Entry>> {
    let marked = text.lines().any(|line| {
        let line = text::trim(line);
        MARKERS.iter().any(|m| line.eq_ignore_ascii_case(m))
            || meta_part_authors(strip_bullets(line)).is_some()
            || line
                .get(..12)
                .is_some_and(|head| head.eq_ignore_ascii_case("submitted by"))
    });
    if !marked {
        return None;
    }
    parse_text(text, ctx).ok()
}

/// What a meta block says about its entry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Meta {
    authors: Option<u32>,
    date: Option<NaiveDate>,
}

/// One structural unit of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    /// A run of text lines (joined): a title or a summary.
    Text(String),
    /// A run of meta lines carrying an author count or a date.
    Meta(Meta),
}

/// How one line of a capture reads.
enum Line {
    /// Meta facts (author count, date).
    Meta(Meta),
    /// Chrome without content: separators, counts, boilerplate. Ends a text run.
    Noise,
    /// "Submitted by" alone: the next line is the submitter's name.
    SubmittedBy,
    /// Title or summary text.
    Text,
}

/// Splits a capture into text and meta blocks in page order.
fn text_blocks(text: &str, reference: NaiveDate) -> Vec<Block> {
    let mut blocks = Vec::new();
    for para in paragraphs(text) {
        let mut run: Vec<&str> = Vec::new();
        let mut meta: Option<Meta> = None;
        let mut skip_next = false;
        for line in para {
            if std::mem::take(&mut skip_next) {
                flush_text(&mut run, &mut blocks);
                continue;
            }
            match classify(line, reference) {
                Line::Text => {
                    flush_meta(&mut meta, &mut blocks);
                    run.push(line);
                }
                Line::Meta(m) => {
                    flush_text(&mut run, &mut blocks);
                    let acc = meta.get_or_insert_with(Meta::default);
                    acc.authors = acc.authors.or(m.authors);
                    acc.date = acc.date.or(m.date);
                }
                Line::Noise => flush_text(&mut run, &mut blocks),
                Line::SubmittedBy => {
                    flush_text(&mut run, &mut blocks);
                    skip_next = true;
                }
            }
        }
        flush_text(&mut run, &mut blocks);
        flush_meta(&mut meta, &mut blocks);
    }
    blocks
}

/// Emits a finished text run: one block, or title + summary when a capture put a short
/// title line directly above its abstract without a blank line.
fn flush_text(run: &mut Vec<&str>, blocks: &mut Vec<Block>) {
    if run.is_empty() {
        return;
    }
    let (first, rest) = match run.split_first() {
        Some((first, rest)) => (*first, rest),
        None => return,
    };
    if !rest.is_empty() && text::is_title_like(first) {
        let rest_joined = clean_join(rest);
        if is_prose(&rest_joined) {
            blocks.push(Block::Text(clean_text(first)));
            blocks.push(Block::Text(rest_joined));
            run.clear();
            return;
        }
    }
    blocks.push(Block::Text(clean_join(run)));
    run.clear();
}

fn flush_meta(meta: &mut Option<Meta>, blocks: &mut Vec<Block>) {
    if let Some(m) = meta.take() {
        blocks.push(Block::Meta(m));
    }
}

/// Classifies one trimmed line. A line is meta only when every part of it (split at
/// "·", "•" and "|") is meta, so a title containing a date or a number stays a title.
fn classify(line: &str, reference: NaiveDate) -> Line {
    if BOILERPLATE.iter().any(|b| line.eq_ignore_ascii_case(b)) {
        return if line.eq_ignore_ascii_case("submitted by") {
            Line::SubmittedBy
        } else {
            Line::Noise
        };
    }
    let mut meta = Meta::default();
    for part in line.split(['·', '•', '|']) {
        let part = text::trim(part);
        if part.is_empty() {
            continue;
        }
        if let Some(n) = meta_part_authors(part) {
            meta.authors = Some(n);
        } else if let Some(d) = dates::parse_date(strip_published(part), reference) {
            meta.date = Some(d);
        } else if !is_noise_part(part) {
            return Line::Text;
        }
    }
    if meta == Meta::default() {
        Line::Noise
    } else {
        Line::Meta(meta)
    }
}

/// Leading bullets and separators an authors line may carry ("  • 8 authors").
fn strip_bullets(line: &str) -> &str {
    line.trim_matches(|c: char| text::is_space(c) || matches!(c, '·' | '•' | '|' | '-'))
}

/// Drops a "Published on" / "Published" label before a date ("Published on May 7").
fn strip_published(part: &str) -> &str {
    for label in ["published on ", "published "] {
        if let Some(head) = part.get(..label.len()) {
            if head.eq_ignore_ascii_case(label) {
                return part.get(label.len()..).unwrap_or(part);
            }
        }
    }
    part
}

/// "8 authors" / "1 author" -> the count.
fn meta_part_authors(part: &str) -> Option<u32> {
    let (count, word) = part.split_once(char::is_whitespace)?;
    let word = text::trim(word);
    if !(word.eq_ignore_ascii_case("authors") || word.eq_ignore_ascii_case("author")) {
        return None;
    }
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    count.parse().ok()
}

/// Parts of a meta line that carry nothing we keep: upvote and comment counts,
/// "Submitted by name", "N comments".
fn is_noise_part(part: &str) -> bool {
    // Noise is short; checking length first keeps long summary lines cheap.
    if part.len() > 80 {
        return false;
    }
    if part.len() <= 7 && part.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let lower = part.to_ascii_lowercase();
    if lower.starts_with("submitted by") {
        return true;
    }
    match lower.split_once(' ') {
        Some((n, word)) => {
            n.bytes().all(|b| b.is_ascii_digit())
                && matches!(word, "comment" | "comments" | "upvotes" | "upvote")
        }
        None => false,
    }
}

/// An entry being assembled from blocks.
#[derive(Debug)]
struct Draft {
    title: String,
    summary: Option<String>,
    meta: Option<Meta>,
}

impl Draft {
    fn new(title: String) -> Self {
        Draft {
            title,
            summary: None,
            meta: None,
        }
    }

    /// Whether the draft is certainly a paper (not header or navigation): it has a
    /// summary or an author count.
    fn is_substantial(&self) -> bool {
        self.summary.is_some() || self.meta.is_some_and(|m| m.authors.is_some())
    }

    /// Whether the draft is only a lone line: navigation or footer, never an entry.
    fn is_bare(&self) -> bool {
        self.summary.is_none() && self.meta.is_none()
    }

    fn into_entry(self) -> Entry {
        let meta = self.meta.unwrap_or_default();
        // Blocks are cleaned when they are cut from the page; joining two keeps them so.
        Entry {
            title: self.title,
            link: None,
            summary: self.summary.unwrap_or_default(),
            authors: Vec::new(),
            author_count: meta.authors,
            source: None,
            published: meta.date.map(day_start),
            listed: None,
            arxiv_id: None,
            guid: None,
            format: NAME,
        }
    }
}

/// Whether text ends like a sentence (titles rarely do).
fn ends_sentence(text: &str) -> bool {
    text.ends_with(['.', '!', '…'])
}

/// A title never runs this long; prose this long after a summary continues it.
const LONGEST_TITLE: usize = 250;

/// Groups blocks into entries (see [`parse_text`] for the rules).
fn assemble(blocks: Vec<Block>) -> Vec<Draft> {
    let mut drafts: Vec<Draft> = Vec::new();
    let mut cur: Option<Draft> = None;
    let mut blocks = blocks.into_iter().peekable();
    while let Some(block) = blocks.next() {
        let meta_follows = matches!(blocks.peek(), Some(Block::Meta(_)));
        match block {
            Block::Meta(m) => {
                // A meta block with no open entry is the page's own date line: skipped.
                if let Some(d) = cur.as_mut() {
                    let acc = d.meta.get_or_insert_with(Meta::default);
                    acc.authors = acc.authors.or(m.authors);
                    acc.date = acc.date.or(m.date);
                }
            }
            Block::Text(t) => {
                let long = t.chars().count() >= LONGEST_TITLE;
                cur = match cur.take() {
                    None => (!long).then(|| Draft::new(t)),
                    Some(mut d)
                        if d.summary.is_none()
                            && (is_prose(&t)
                                || (meta_follows && d.meta.is_none() && ends_sentence(&t))) =>
                    {
                        // The summary, whether it comes before the meta block or after
                        // it; a short one is known by ending a sentence right above the
                        // meta block.
                        d.summary = Some(t);
                        Some(d)
                    }
                    Some(mut d) if d.meta.is_none() && long => {
                        // An abstract broken into paragraphs: one summary.
                        if let Some(s) = d.summary.as_mut() {
                            s.push(' ');
                            s.push_str(&t);
                        }
                        Some(d)
                    }
                    Some(d) => {
                        drafts.push(d);
                        (!long).then(|| Draft::new(t))
                    }
                };
            }
        }
    }
    drafts.extend(cur);
    // Everything before the first certain paper is page header ("Daily Papers" / "May 20").
    let first = drafts
        .iter()
        .position(Draft::is_substantial)
        .unwrap_or(drafts.len());
    drafts.drain(..first);
    drafts.retain(|d| !d.is_bare());
    drafts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::hf_papers::HfPapers;
    use crate::parse::PageFormat;
    use chrono::{DateTime, TimeZone, Utc};

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        crate::parse::decode(&std::fs::read(path).unwrap())
    }

    fn parse_fixture(name: &str, captured: DateTime<Utc>) -> Vec<Entry> {
        parse_text(&fixture(name), &ParseContext::at(captured)).unwrap()
    }

    #[test]
    fn may20_capture_has_27_entries() {
        assert_eq!(
            parse_fixture("hf_papers_may20.txt", at(2026, 5, 20)).len(),
            27
        );
    }

    #[test]
    fn apr17_capture_has_35_entries() {
        assert_eq!(
            parse_fixture("hf_papers_apr17.txt", at(2026, 4, 17)).len(),
            35
        );
    }

    #[test]
    fn may20_first_entry_field_by_field() {
        let entries = parse_fixture("hf_papers_may20.txt", at(2026, 5, 20));
        let e = &entries[0];
        assert_eq!(
            e.title,
            "Enhancing Neural Subset Selection: Integrating Background Information into Set Representations"
        );
        assert!(e
            .summary
            .starts_with("Learning neural subset selection tasks, such as compound selection"));
        assert!(
            e.summary.ends_with("strategies in real-world contexts."),
            "{}",
            e.summary
        );
        assert_eq!(e.author_count, Some(8));
        assert!(e.authors.is_empty());
        assert_eq!(e.published.map(|t| t.date_naive()), date(2024, 2, 5));
        assert_eq!(e.link, None);
        assert_eq!(e.source, None);
        assert_eq!(e.arxiv_id, None);
        assert_eq!(e.format, "hf-papers");
    }

    #[test]
    fn may20_last_entry_ignores_page_number_debris() {
        let entries = parse_fixture("hf_papers_may20.txt", at(2026, 5, 20));
        let e = entries.last().unwrap();
        assert_eq!(
            e.title,
            "Is There a Better Source Distribution than Gaussian? Exploring Source Distributions for Image Flow Matching"
        );
        assert!(e.summary.ends_with("github.com/kwanseokk/SourceFM."));
        assert_eq!(e.author_count, Some(3));
        assert_eq!(e.published.map(|t| t.date_naive()), date(2025, 12, 19));
    }

    #[test]
    fn entry_without_meta_keeps_fields_empty_and_is_not_glued() {
        let entries = parse_fixture("hf_papers_may20.txt", at(2026, 5, 20));
        let i = entries
            .iter()
            .position(|e| e.title.starts_with("Reconstruction-Guided Slot Curriculum"))
            .unwrap();
        let e = &entries[i];
        assert_eq!(
            e.title,
            "Reconstruction-Guided Slot Curriculum: Addressing Object Over-Fragmentation in Video Object-Centric Learning"
        );
        assert!(e
            .summary
            .starts_with("Video Object-Centric Learning seeks to decompose raw videos"));
        assert!(e.summary.ends_with("github.com/wjun0830/SlotCurri."));
        assert_eq!(e.author_count, None);
        assert_eq!(e.published.map(|t| t.date_naive()), None);
        // The neighbour keeps its own title, summary and meta.
        let next = &entries[i + 1];
        assert_eq!(
            next.title,
            "Understanding the Role of Invariance in Transfer Learning"
        );
        assert!(next
            .summary
            .starts_with("Transfer learning is a powerful technique"));
        assert_eq!(next.author_count, Some(3));
        assert_eq!(next.published.map(|t| t.date_naive()), date(2024, 7, 5));
        let prev = &entries[i - 1];
        assert_eq!(prev.title, "Cycle Consistency Driven Object Discovery");
        assert_eq!(prev.published.map(|t| t.date_naive()), date(2023, 6, 3));
    }

    #[test]
    fn yearless_date_resolves_against_capture_time() {
        let title =
            "Polynomial-Time Optimal Group Selection via the Double-Commutator Eigenvalue Problem";
        let find = |captured| {
            parse_fixture("hf_papers_may20.txt", captured)
                .into_iter()
                .find(|e| e.title == title)
                .unwrap()
        };
        let e = find(at(2026, 5, 20));
        assert_eq!(e.author_count, Some(1));
        assert_eq!(e.published.map(|t| t.date_naive()), date(2026, 5, 7));
        // Captured just after New Year, "May 7" is last year's.
        assert_eq!(
            find(at(2027, 1, 2)).published.map(|t| t.date_naive()),
            date(2026, 5, 7)
        );
        // Captured the day before May 7: a year earlier.
        assert_eq!(
            find(at(2026, 5, 6)).published.map(|t| t.date_naive()),
            date(2025, 5, 7)
        );
    }

    #[test]
    fn apr17_entries_field_by_field() {
        let entries = parse_fixture("hf_papers_apr17.txt", at(2026, 4, 17));
        let first = &entries[0];
        assert_eq!(
            first.title,
            "Measuring and Controlling Solution Degeneracy across Task-Trained Recurrent Neural Networks"
        );
        assert_eq!(first.author_count, Some(4));
        assert_eq!(first.published.map(|t| t.date_naive()), date(2024, 10, 4));
        let entropy = entries
            .iter()
            .find(|e| e.title == "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models")
            .unwrap();
        assert_eq!(entropy.author_count, Some(17));
        assert_eq!(
            entropy.published.map(|t| t.date_naive()),
            date(2025, 5, 28),
            "upvote debris after the date"
        );
        let anatomy = entries
            .iter()
            .find(|e| e.title.starts_with("Anatomy of a Lie"))
            .unwrap();
        assert_eq!(anatomy.author_count, None);
        assert_eq!(anatomy.published.map(|t| t.date_naive()), None);
        assert!(anatomy.summary.ends_with("diagnosable by design."));
        let jan = entries
            .iter()
            .find(|e| e.title == "Information-Theoretic Causal Bounds under Unmeasured Confounding")
            .unwrap();
        assert_eq!(jan.published.map(|t| t.date_naive()), date(2026, 1, 23));
        let phi = entries
            .iter()
            .find(|e| e.title.starts_with("Causality and Renormalization"))
            .unwrap();
        assert_eq!(
            phi.title,
            "Causality and Renormalization in Finite-Time-Path Out-of-Equilibrium φ^3 QFT"
        );
        let last = entries.last().unwrap();
        assert_eq!(last.author_count, Some(42));
        assert_eq!(last.published.map(|t| t.date_naive()), date(2024, 11, 18));
    }

    #[test]
    fn yearless_dates_across_new_year() {
        let text = "First Paper\n\nA summary that is long enough to read as prose, with several words in it.\n\n  • 2 authors\n·\nDec 30\n\nSecond Paper\n\nAnother summary that is long enough to read as prose, with several words in it.\n\n  • 3 authors\n·\nJan 2\n";
        let entries = parse_text(text, &ParseContext::at(at(2026, 1, 3))).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].published.map(|t| t.date_naive()),
            date(2025, 12, 30)
        );
        assert_eq!(
            entries[1].published.map(|t| t.date_naive()),
            date(2026, 1, 2)
        );
    }

    #[test]
    fn crlf_bom_nbsp_and_trailing_blanks_parse_the_same() {
        let plain = fixture("hf_papers_may20.txt");
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend(
            plain
                .replace('\n', "  \r\n")
                .replace("\r\n\r\n", "\r\n\u{a0}\r\n")
                .as_bytes(),
        );
        let mangled = crate::parse::decode(&bytes);
        let ctx = ParseContext::at(at(2026, 5, 20));
        assert_eq!(
            parse_text(&mangled, &ctx).unwrap(),
            parse_text(&plain, &ctx).unwrap()
        );
    }

    #[test]
    fn invalid_utf8_inside_a_title_is_replaced_not_rejected() {
        let mut bytes = fixture("hf_papers_may20.txt").into_bytes();
        let pos = bytes.windows(8).position(|w| w == b"Subgraph").unwrap();
        bytes.insert(pos + 3, 0xFF);
        let text = crate::parse::decode(&bytes);
        let entries = parse_text(&text, &ParseContext::at(at(2026, 5, 20))).unwrap();
        assert_eq!(entries.len(), 27);
        assert_eq!(
            entries[1].title,
            "Sub\u{fffd}graph Permutation Equivariant Networks"
        );
        assert_eq!(entries[1].author_count, Some(2));
    }

    #[test]
    fn capture_without_header_and_with_submitted_by_lines() {
        let text = "Submitted by\nakhaliq\n\n42\n\nFirst Paper Title\n\nWe propose a method that does a thing, and show that it works on many benchmarks.\n\n · 8 authors\n3\n\nSubmitted by\nsomeone\n\n7\n\nSecond Paper Title\n\nThis abstract is also long enough to be read as prose by the parser, surely.\n\nThird Paper Without Abstract\n\n· 2 authors · Published on May 19\n";
        let entries = parse_text(text, &ParseContext::at(at(2026, 5, 20))).unwrap();
        let titles: Vec<&str> = entries.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "First Paper Title",
                "Second Paper Title",
                "Third Paper Without Abstract"
            ]
        );
        assert_eq!(entries[0].author_count, Some(8));
        assert_eq!(entries[1].author_count, None);
        assert_eq!(entries[2].author_count, Some(2));
        assert_eq!(
            entries[2].published.map(|t| t.date_naive()),
            date(2026, 5, 19)
        );
        assert_eq!(entries[2].summary, "");
    }

    #[test]
    fn capture_without_header_or_author_lines_is_still_sniffed() {
        let text = "Submitted by akhaliq\n\n12\n\nA Paper Title\n\nThe abstract of the paper, long enough to read as prose for the parser.\n";
        let ctx = ParseContext::at(at(2026, 5, 20));
        assert!(HfPapers.sniff(text, &ctx));
        let entries = parse_text(text, &ctx).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].title, "A Paper Title");
    }

    #[test]
    fn short_summary_above_the_meta_block_is_a_summary() {
        let text = "Daily Papers\n\nA Long Paper\n\nAn abstract that is long enough to be prose for the parser, surely it is.\n\n  • 2 authors\n\nA Terse Paper\n\nWe fix it.\n\n  • 1 authors\n·\nMay 2\n";
        let entries = parse_text(text, &ParseContext::at(at(2026, 5, 20))).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].title, "A Terse Paper");
        assert_eq!(entries[1].summary, "We fix it.");
        assert_eq!(entries[1].author_count, Some(1));
        assert_eq!(
            entries[1].published.map(|t| t.date_naive()),
            date(2026, 5, 2)
        );
    }

    #[test]
    fn title_directly_above_its_abstract_is_split() {
        let text = "Daily Papers\n\nA Title\nThe abstract follows on the next line without a blank, and it is long enough to be prose.\n  • 2 authors\n·\nFeb 5, 2024\n";
        let entries = parse_text(text, &ParseContext::at(at(2026, 5, 20))).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].title, "A Title");
        assert_eq!(entries[0].author_count, Some(2));
        assert_eq!(
            entries[0].published.map(|t| t.date_naive()),
            date(2024, 2, 5)
        );
    }

    #[test]
    fn sniffs_captures_and_refuses_other_text() {
        let ctx = ParseContext::at(at(2026, 5, 20));
        assert!(HfPapers.sniff(&fixture("hf_papers_may20.txt"), &ctx));
        assert!(HfPapers.sniff(&fixture("hf_papers_apr17.txt"), &ctx));
        assert!(!HfPapers.sniff(&fixture("aitopics_energy.txt"), &ctx));
        assert!(!HfPapers.sniff("just some text\n\nwith paragraphs\n", &ctx));
        assert!(parse_text("just some text\n", &ctx).is_err());
    }
}
