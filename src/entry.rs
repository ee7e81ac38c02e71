//! [`Entry`], the one normalized item type every parser yields, and its identity.
//!
//! Everything after parsing (store, feeds, alerts) knows entries only, never page formats.
//!
//! Identity follows ARCHITECTURE.md: an entry is what its page says it *is*.
//! - A paper listing (Hugging Face, arXiv, an arXiv feed whose guid is the paper id)
//!   names the paper: `arxiv:<id>`.
//! - A feed entry names itself by its guid (`guid:<id>`), else by its link (`url:<link>`).
//!   A blog post whose link points at a paper keeps its own guid: it mentions the
//!   paper, it is not the paper.
//! - Only an entry with nothing better (a text capture: a title, no link, no id) is
//!   known by its normalized title alone.
//!
//! [`Entry::ident`] is that id; [`Entry::aliases`] adds the link and the normalized
//! title, which let a text capture find the paper a richer page already recorded. The
//! store merges two entries only when their ids agree, or when one of them has no id
//! and their titles match: two entries with different ids are never one item.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

/// One listing entry as parsed from a page, before the store has seen it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The entry's headline, whitespace-collapsed.
    pub title: String,
    /// Absolute link to the entry, when the page gives one.
    pub link: Option<String>,
    /// Abstract or teaser text; empty when the page has none.
    pub summary: String,
    /// Author names; empty when the page only gives a count (or nothing).
    pub authors: Vec<String>,
    /// Number of authors: `authors.len()` when names are known, else the page's "N authors".
    pub author_count: Option<u32>,
    /// Publisher or venue named by the page ("Al Jazeera", "arXiv.org Machine Learning").
    pub source: Option<String>,
    /// When the thing itself was published (a paper's arXiv date, a post's date), as
    /// the page wrote it: a full instant with its offset, or a bare day at 00:00 UTC.
    pub published: Option<Timestamp>,
    /// When the listing says the entry appeared on it: the Hugging Face daily-papers
    /// day, the arXiv announcement day, a feed item's own date. Feeds date items by it
    /// (else by when lookout first saw them), so a new item is new in a reader too.
    pub listed: Option<Timestamp>,
    /// arXiv identifier ("2401.12345", version suffix removed) when the page lists the
    /// paper itself (not a post that links to it).
    pub arxiv_id: Option<String>,
    /// The page's own id for an entry that is not a paper: a feed item's guid or Atom
    /// id, as written. `None` when the page gives none.
    pub guid: Option<String>,
    /// The page format that produced this entry (`hf-papers`, `aitopics`, ...).
    pub format: &'static str,
}

/// The longest field values an entry keeps (issue 13.11). Pages are hostile: a 1 MB
/// title would be stored, served in every feed and mailed in every alert. These are
/// far above what any real listing holds (arXiv caps abstracts at 1,920 characters),
/// and what a reader can show.
pub mod caps {
    /// Title, in characters.
    pub const TITLE: usize = 500;
    /// Summary, in characters.
    pub const SUMMARY: usize = 10_000;
    /// One author name, in characters.
    pub const AUTHOR: usize = 200;
    /// Author names kept (`author_count` keeps the full count).
    pub const AUTHORS: usize = 300;
    /// Publisher or venue, in characters.
    pub const SOURCE: usize = 200;
    /// Link, in bytes. A longer link is dropped, not cut: a cut link leads elsewhere.
    pub const LINK: usize = 2_048;
    /// Guid, in bytes. A longer guid is replaced by `sha256:<hex>` of itself, which
    /// keeps it unique.
    pub const GUID: usize = 1_000;
}

/// What marks a value that [`Entry::cap_fields`] cut short.
pub const CUT_MARKER: char = '…';

/// Cuts `text` to at most `max` characters, the last being [`CUT_MARKER`], on a
/// character boundary.
fn cap_chars(text: &mut String, max: usize) {
    if text.len() <= max {
        return; // fewer bytes than `max` means fewer characters too
    }
    if let Some((at, _)) = text.char_indices().nth(max.saturating_sub(1)) {
        if text[at..].chars().nth(1).is_some() {
            text.truncate(at);
            text.push(CUT_MARKER);
        }
    }
}

/// A point in time as a page wrote it, offset included.
pub type Timestamp = DateTime<FixedOffset>;

/// A bare calendar day as a [`Timestamp`]: its first instant in UTC. What a page that
/// gives only a day ("May 19, 2026") means, as precisely as it says it.
pub fn day_start(day: NaiveDate) -> Timestamp {
    day.and_time(chrono::NaiveTime::MIN)
        .and_utc()
        .fixed_offset()
}

/// A timestamp as messages print it: `2024-04-17` for a bare day (a day's start in UTC,
/// see [`day_start`]), else RFC 3339 with its offset.
pub fn timestamp_text(t: &Timestamp) -> String {
    if *t == day_start(t.date_naive()) {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.to_rfc3339()
    }
}

impl Entry {
    /// The entry's preferred identity key: its [`Entry::ident`], else its normalized
    /// title. Used as the stored item's key.
    pub fn key(&self) -> String {
        self.aliases()
            .into_iter()
            .next()
            .unwrap_or_else(|| "title:".to_owned())
    }

    /// What the page says this entry *is*: `arxiv:<id>` for a paper, `guid:<id>` for a
    /// feed item with its own id, `url:<link>` for an entry known by its link; `None`
    /// for an entry with nothing better than its title.
    pub fn ident(&self) -> Option<String> {
        if let Some(id) = self.arxiv_id.as_deref().filter(|id| !id.trim().is_empty()) {
            return Some(format!("arxiv:{}", normalize_arxiv_id(id)));
        }
        if let Some(guid) = self
            .guid
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            return Some(format!("guid:{guid}"));
        }
        self.url_alias()
    }

    /// Holds every field to its [`caps`]: text is cut on a character boundary and
    /// ends in [`CUT_MARKER`], an over-long link is dropped, an over-long guid becomes
    /// its SHA-256. Every parsed page goes through it.
    pub fn cap_fields(&mut self) {
        cap_chars(&mut self.title, caps::TITLE);
        cap_chars(&mut self.summary, caps::SUMMARY);
        if self.authors.len() > caps::AUTHORS {
            let count = u32::try_from(self.authors.len()).unwrap_or(u32::MAX);
            self.author_count = Some(self.author_count.unwrap_or(0).max(count));
            self.authors.truncate(caps::AUTHORS);
        }
        for name in &mut self.authors {
            cap_chars(name, caps::AUTHOR);
        }
        if let Some(source) = &mut self.source {
            cap_chars(source, caps::SOURCE);
        }
        if self.link.as_ref().is_some_and(|l| l.len() > caps::LINK) {
            self.link = None;
        }
        if let Some(guid) = self.guid.as_mut().filter(|g| g.len() > caps::GUID) {
            use sha2::Digest;
            *guid = format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(guid.as_bytes()))
            );
        }
    }

    /// `url:<normalized link>` for an entry that is not a paper and has a link.
    fn url_alias(&self) -> Option<String> {
        if self.arxiv_id.is_some() {
            // A paper's link is where one page shows it, not what it is.
            return None;
        }
        let link = self.link.as_deref().filter(|l| !l.trim().is_empty())?;
        Some(format!("url:{}", normalize_url(link)))
    }

    /// Every key this entry is known by, most specific first: its [`Entry::ident`] (so
    /// the first alias is the id whenever there is one), its link, and its normalized
    /// title. The title is left out for an entry with a guid:
    /// nothing that lacks an id (a text capture) captures a feed item, and a post
    /// titled like a paper must not be where a capture of the paper lands.
    pub fn aliases(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(3);
        let ident = self.ident();
        let has_guid = ident.as_deref().is_some_and(|i| i.starts_with("guid:"));
        keys.extend(ident);
        if has_guid {
            keys.extend(self.url_alias());
        }
        let title = normalize_title(&self.title);
        if !title.is_empty() && !has_guid {
            keys.push(format!("title:{title}"));
        }
        keys
    }
}

/// Normalizes a title for identity: Unicode NFKC, lower-cased, every run of
/// punctuation and whitespace collapsed to one space, trimmed.
///
/// "Gradient is All You Need?" and "gradient  is all you need" are the same title.
pub fn normalize_title(title: &str) -> String {
    // Most titles are NFKC already (all ASCII ones are): the quick check skips the
    // normalizer, which measured as a tenth of a bulk import's store time.
    match unicode_normalization::is_nfkc_quick(title.chars()) {
        unicode_normalization::IsNormalized::Yes => fold_title(title.chars()),
        _ => fold_title(title.nfkc()),
    }
}

/// Lower-cases NFKC characters and collapses runs of anything not alphanumeric.
fn fold_title(chars: impl Iterator<Item = char>) -> String {
    let mut out = String::with_capacity(chars.size_hint().0);
    let mut pending_space = false;
    for ch in chars.flat_map(char::to_lowercase) {
        if ch.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(ch);
        } else {
            pending_space = true;
        }
    }
    out
}

/// Strips a version suffix ("v2") and any "arXiv:" prefix from an arXiv id.
pub fn normalize_arxiv_id(id: &str) -> String {
    let id = id.trim();
    let id = id
        .strip_prefix("arXiv:")
        .or_else(|| id.strip_prefix("arxiv:"))
        .unwrap_or(id);
    match id.rfind('v') {
        Some(pos)
            if pos > 0
                && pos + 1 < id.len()
                && id[pos + 1..].bytes().all(|b| b.is_ascii_digit())
                && id[..pos].bytes().last().is_some_and(|b| b.is_ascii_digit()) =>
        {
            id[..pos].to_owned()
        }
        _ => id.to_owned(),
    }
}

/// Normalizes a URL for identity: scheme and host lower-cased, fragment and a trailing
/// slash dropped. Not a full canonicalization; enough for links one site prints.
pub fn normalize_url(link: &str) -> String {
    match url::Url::parse(link.trim()) {
        Ok(mut url) => {
            url.set_fragment(None);
            let mut s = url.to_string();
            if s.ends_with('/') && url.path() != "/" {
                s.pop();
            }
            s
        }
        Err(_) => link.trim().to_owned(),
    }
}

/// Collapses every run of whitespace (including non-breaking spaces) into one space
/// and trims the ends. Parsers use it for every text field they emit.
pub fn clean_text(text: &str) -> String {
    // Most text is clean already; one byte scan proves it and saves the rebuild.
    if is_clean(text.as_bytes()) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    push_clean(&mut out, text);
    out
}

/// [`clean_text`] of the parts joined by spaces, built in one pass: what a reader
/// needs for a field spread over several lines of a page.
pub fn clean_join(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        push_clean(&mut out, part);
    }
    out
}

/// Appends the words of `text` to `out`, one space between words (and before the
/// first, when `out` already holds text).
///
/// Whitespace is what [`char::is_whitespace`] says plus U+FEFF. Runs of words with
/// single ASCII spaces between them are copied whole; a character is decoded only at
/// the lead bytes of non-ASCII whitespace (see `BYTE_CLASS`). Going
/// character by character, then word by word, this was a bulk import's top cost.
fn push_clean(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    // Start of the run being copied unchanged; `None` between words.
    let mut run: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        if BYTE_CLASS[usize::from(bytes[i])] == WORD {
            if run.is_none() {
                if !out.is_empty() {
                    out.push(' ');
                }
                run = Some(i);
            }
            i += 1;
            while i < bytes.len() && BYTE_CLASS[usize::from(bytes[i])] == WORD {
                i += 1;
            }
            continue;
        }
        let width = whitespace_at(text, i);
        if width == 0 {
            // A non-ASCII character that is not whitespace: part of a word.
            run.get_or_insert_with(|| {
                if !out.is_empty() {
                    out.push(' ');
                }
                i
            });
            i += 1;
            continue;
        }
        // One ASCII space between two words stays inside the run.
        if bytes[i] == b' '
            && run.is_some()
            && whitespace_at(text, i + 1) == 0
            && i + 1 < bytes.len()
        {
            i += 1;
            continue;
        }
        if let Some(start) = run.take() {
            out.push_str(text.get(start..i).unwrap_or(""));
        }
        i += width;
    }
    if let Some(start) = run {
        out.push_str(text.get(start..).unwrap_or(""));
    }
}

/// [`BYTE_CLASS`] of a byte that never starts whitespace.
const WORD: u8 = 0;

/// Per byte value: [`WORD`], or 1 for a byte that is or may start whitespace (ASCII
/// whitespace, and the lead bytes of U+0085, U+00A0, U+1680, U+2000-U+205F, U+3000
/// and U+FEFF).
static BYTE_CLASS: [u8; 256] = {
    let mut table = [WORD; 256];
    let starts = [
        b' ', b'\t', b'\n', 0x0B, 0x0C, b'\r', 0xC2, 0xE1, 0xE2, 0xE3, 0xEF,
    ];
    let mut k = 0;
    while k < starts.len() {
        table[starts[k] as usize] = 1;
        k += 1;
    }
    table
};

/// The byte length of the whitespace character starting at byte `i` of `text`, or 0
/// when none starts there (a word character, the middle of one, or the end).
#[inline]
fn whitespace_at(text: &str, i: usize) -> usize {
    match text.as_bytes().get(i) {
        Some(&b) if BYTE_CLASS[usize::from(b)] == WORD => 0,
        Some(b) if b.is_ascii() => 1,
        Some(_) => match text.get(i..).and_then(|t| t.chars().next()) {
            Some(c) if c.is_whitespace() || c == '\u{feff}' => c.len_utf8(),
            _ => 0,
        },
        None => 0,
    }
}

/// Whether `clean_text` would return `bytes` unchanged: ASCII spaces only between
/// words, one at a time, no other ASCII whitespace, and no lead byte of a non-ASCII
/// whitespace character ([`BYTE_CLASS`]), which sends the text the slow, exact way.
fn is_clean(bytes: &[u8]) -> bool {
    let mut previous_space = true; // a leading space is not clean
    for &b in bytes {
        match b {
            b' ' if previous_space => return false,
            b' ' => previous_space = true,
            _ if BYTE_CLASS[usize::from(b)] != WORD => return false,
            _ => previous_space = false,
        }
    }
    !previous_space || bytes.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_title_ignores_case_punctuation_and_spacing() {
        assert_eq!(
            normalize_title("Gradient is All You Need?"),
            normalize_title("  gradient\u{a0}is all-you  need ")
        );
        assert_eq!(normalize_title("Ärzte: A Study"), "ärzte a study");
    }

    #[test]
    fn titles_not_in_nfkc_are_normalized_first() {
        // Ligature, full-width letters, a decomposed umlaut: each equals its plain form.
        assert_eq!(normalize_title("E\u{fb03}cient"), "efficient");
        assert_eq!(normalize_title("\u{ff21}\u{ff29} Models"), "ai models");
        assert_eq!(normalize_title("A\u{308}rzte"), normalize_title("Ärzte"));
    }

    #[test]
    fn arxiv_version_suffix_is_dropped() {
        assert_eq!(normalize_arxiv_id("2401.12345v3"), "2401.12345");
        assert_eq!(normalize_arxiv_id("arXiv:2401.12345"), "2401.12345");
        assert_eq!(normalize_arxiv_id("hep-th/9901001v1"), "hep-th/9901001");
    }

    #[test]
    fn a_post_with_a_guid_is_known_by_it_and_never_by_its_title() {
        let post = Entry {
            title: "Frame Averaging for Invariant and Equivariant Network Design".into(),
            link: Some("https://arxiv.org/abs/2110.03336v3".into()),
            guid: Some("https://blog.example.org/?p=42".into()),
            ..Entry::default()
        };
        assert_eq!(post.key(), "guid:https://blog.example.org/?p=42");
        assert_eq!(
            post.aliases(),
            [
                "guid:https://blog.example.org/?p=42",
                "url:https://arxiv.org/abs/2110.03336v3"
            ]
        );
        let text_capture = Entry {
            title: "Frame averaging for invariant and equivariant network design".into(),
            ..Entry::default()
        };
        assert_eq!(text_capture.ident(), None);
        assert_eq!(
            text_capture.key(),
            "title:frame averaging for invariant and equivariant network design"
        );
    }

    #[test]
    fn fields_are_capped_on_character_boundaries_with_a_marker() {
        let mut e = Entry {
            title: "é".repeat(1 << 20),
            summary: "s".repeat(caps::SUMMARY),
            authors: vec!["n".repeat(10_000); 1_000],
            source: Some("日".repeat(300)),
            link: Some(format!("https://example.org/{}", "a".repeat(1 << 20))),
            guid: Some("g".repeat(5_000)),
            ..Entry::default()
        };
        e.cap_fields();
        assert_eq!(e.title.chars().count(), caps::TITLE);
        assert!(e.title.ends_with(CUT_MARKER) && e.title.starts_with("éé"));
        assert_eq!(
            e.summary.len(),
            caps::SUMMARY,
            "exactly at the cap: kept whole"
        );
        assert!(!e.summary.ends_with(CUT_MARKER));
        assert_eq!(e.authors.len(), caps::AUTHORS);
        assert_eq!(e.author_count, Some(1_000));
        assert_eq!(e.authors[0].chars().count(), caps::AUTHOR);
        assert_eq!(
            e.source.as_deref().map(|s| s.chars().count()),
            Some(caps::SOURCE)
        );
        assert_eq!(e.link, None);
        let guid = e.guid.clone().expect("guid");
        assert!(guid.starts_with("sha256:") && guid.len() == 71);
        let before = e.clone();
        e.cap_fields();
        assert_eq!(e, before, "capping twice changes nothing");
    }

    #[test]
    fn a_bare_day_is_its_first_utc_instant() {
        let day = NaiveDate::from_ymd_opt(2026, 5, 19).expect("date");
        assert_eq!(day_start(day).to_rfc3339(), "2026-05-19T00:00:00+00:00");
    }

    #[test]
    fn key_prefers_arxiv_id_then_url_then_title() {
        let mut e = Entry {
            title: "A Paper".into(),
            ..Entry::default()
        };
        assert_eq!(e.key(), "title:a paper");
        e.link = Some("https://Example.com/a/#x".into());
        assert_eq!(e.key(), "url:https://example.com/a");
        e.arxiv_id = Some("2401.00001v2".into());
        assert_eq!(e.key(), "arxiv:2401.00001");
        assert_eq!(e.aliases().len(), 2, "arxiv id and title, not the url");
    }

    #[test]
    fn clean_text_collapses_nbsp_and_bom() {
        assert_eq!(clean_text("\u{feff} a\u{a0}\u{a0}b \t c  "), "a b c");
    }

    /// The word-splitting definition `clean_text` and `clean_join` must agree with.
    fn reference_clean(text: &str) -> String {
        text.split(|c: char| c.is_whitespace() || c == '\u{feff}')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn clean_text_and_clean_join_agree_with_splitting_on_whitespace() {
        let alphabet = [
            "a", "b", " ", "  ", "\t", "\n", "\r", "\u{a0}", "\u{85}", "\u{feff}", "\u{2003}",
            "\u{3000}", "\u{2028}", "\u{200b}", "é", "€", "’", "日", "\u{1c}",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize % n
        };
        for _ in 0..20_000 {
            let parts: Vec<String> = (0..1 + next(3))
                .map(|_| {
                    (0..next(12))
                        .map(|_| alphabet[next(alphabet.len())])
                        .collect()
                })
                .collect();
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let joined = refs.join(" ");
            assert_eq!(clean_text(&joined), reference_clean(&joined), "{joined:?}");
            assert_eq!(clean_join(&refs), reference_clean(&joined), "{refs:?}");
        }
    }

    #[test]
    fn clean_text_fast_path_agrees_with_the_slow_one() {
        for text in [
            "",
            " ",
            "a",
            "a b",
            "a  b",
            " a",
            "a ",
            "ä ö",
            "a\u{2003}b",
            "a\u{3000}b",
            "x\u{85}y",
            "a\u{1680}b",
            "naïve café",
            "a\u{1c}b",
            "日本語 テキスト",
            "\u{feff}a\u{a0}\u{a0}b \t c  ",
            "a\u{2028}\u{2029}b\u{202f}c\u{205f}d\u{200a}e",
            "a\u{200b}b",
            "\u{e9}\u{e1}\u{2019}\u{20ac}",
        ] {
            assert_eq!(clean_text(text), reference_clean(text), "{text:?}");
        }
    }
}
