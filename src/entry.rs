//! [`Entry`], the one normalized item type every parser yields, and its identity.
//!
//! Everything after parsing (store, feeds, alerts) knows entries only, never page formats.
//! Identity follows ARCHITECTURE.md: an entry is known by every id a page gives for it
//! (an arXiv id, a canonical URL) and always by its normalized title, so the same paper
//! captured as text, as HTML and through a JSON API is one item.

use chrono::NaiveDate;
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
    /// Publication date, when the page gives one.
    pub published: Option<NaiveDate>,
    /// arXiv identifier ("2401.12345", version suffix removed) when the page gives one.
    pub arxiv_id: Option<String>,
    /// The page format that produced this entry (`hf-papers`, `aitopics`, ...).
    pub format: &'static str,
}

impl Entry {
    /// The entry's preferred identity key: the arXiv id, else the canonical link for
    /// formats whose links are canonical, else the normalized title.
    pub fn key(&self) -> String {
        self.aliases()
            .into_iter()
            .next()
            .unwrap_or_else(|| "title:".to_owned())
    }

    /// Every key this entry is known by, most specific first. The store matches an
    /// entry to a known item when any alias matches.
    pub fn aliases(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(3);
        if let Some(id) = &self.arxiv_id {
            keys.push(format!("arxiv:{}", normalize_arxiv_id(id)));
        }
        if let Some(link) = &self.link {
            if self.arxiv_id.is_none() && !link.is_empty() {
                keys.push(format!("url:{}", normalize_url(link)));
            }
        }
        let title = normalize_title(&self.title);
        if !title.is_empty() {
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
    let mut out = String::with_capacity(title.len());
    let mut pending_space = false;
    for ch in title.nfkc().flat_map(char::to_lowercase) {
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
    // Most text is clean already (parsers clean a summary more than once on its way);
    // one byte scan proves it and saves the word-by-word rebuild, which measured as the
    // largest cost of a bulk import.
    if is_clean(text.as_bytes()) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for word in text.split(|c: char| c.is_whitespace() || c == '\u{feff}') {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Whether `clean_text` would return `bytes` unchanged: ASCII spaces only between
/// words, one at a time, no other ASCII whitespace, and no lead byte of a non-ASCII
/// whitespace character (U+0085, U+00A0, U+1680, U+2000-U+205F, U+3000, U+FEFF),
/// which sends the text the slow, exact way.
fn is_clean(bytes: &[u8]) -> bool {
    let mut previous_space = true; // a leading space is not clean
    for &b in bytes {
        match b {
            b' ' if previous_space => return false,
            b' ' => previous_space = true,
            b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x1C..=0x1F => return false,
            0xC2 | 0xE1 | 0xE2 | 0xE3 | 0xEF => return false,
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
    fn arxiv_version_suffix_is_dropped() {
        assert_eq!(normalize_arxiv_id("2401.12345v3"), "2401.12345");
        assert_eq!(normalize_arxiv_id("arXiv:2401.12345"), "2401.12345");
        assert_eq!(normalize_arxiv_id("hep-th/9901001v1"), "hep-th/9901001");
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
        ] {
            let slow: Vec<&str> = text
                .split(|c: char| c.is_whitespace() || c == '\u{feff}')
                .filter(|w| !w.is_empty())
                .collect();
            assert_eq!(clean_text(text), slow.join(" "), "{text:?}");
        }
    }
}
