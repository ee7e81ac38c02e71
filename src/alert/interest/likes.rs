//! Likes files: the papers an interest is learned from, read from what a reference
//! manager exports.
//!
//! Three formats, told apart by content (the extension only breaks a tie):
//! - **BibTeX / BibLaTeX** (Zotero, Better BibTeX, JabRef, Mendeley), read with the
//!   `biblatex` crate (typst's reader of real-world `.bib` files);
//! - **CSL-JSON** (Zotero's "CSL JSON" export, Papers, citeproc tools): an array of items;
//! - **text**: one arXiv id, DOI or title a line; `#` starts a comment.
//!
//! From each entry we keep what identifies the paper (arXiv id, DOI) and what the model
//! can learn from when the paper is not in the store (title, abstract). arXiv ids are
//! found wherever exports put them: `eprint` with `archivePrefix`/`eprinttype`, an
//! `arxiv` field, `arxiv.org/abs|pdf/` URLs, DataCite DOIs `10.48550/arXiv.NNNN`, and
//! `arXiv:NNNN` in `number`, `note`, `journal` or `extra` (Zotero's preprint items).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use biblatex::{Bibliography, ChunksExt};
use regex::Regex;

/// A liked paper read from a likes file (BibTeX, CSL-JSON, or text: one arXiv id, DOI or
/// title a line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Like {
    /// The arXiv id without version (`2401.01234`, `hep-th/9901001`).
    pub arxiv_id: Option<String>,
    /// The DOI, lowercased, without a resolver prefix (`10.1103/physrevd.1.1`).
    pub doi: Option<String>,
    /// The title as the file gives it (BibTeX braces and commands removed).
    pub title: Option<String>,
    /// The abstract, where the file has one.
    pub summary: Option<String>,
}

/// Why a likes file could not be read. Parse errors say where (line, or line and column);
/// [`read_likes`] wraps them once with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum LikesError {
    /// The file could not be read.
    #[error("cannot read likes file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A parse error inside a named file.
    #[error("likes file {path}: {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// What went wrong, and where in the file.
        source: Box<LikesError>,
    },
    /// The file names no paper (empty, or comments only): nothing to learn from. A
    /// file emptied while the daemon runs (an exporter that truncates it before it
    /// writes) keeps the model trained on its last contents.
    #[error("likes file {path} names no paper")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid UTF-8.
    #[error("line {line}: not UTF-8 text")]
    NotUtf8 {
        /// The line of the first invalid byte (1-based).
        line: usize,
    },
    /// The BibTeX reader refused the file.
    #[error("line {line}: BibTeX: {message}")]
    Bibtex {
        /// The line where the error starts (1-based).
        line: usize,
        /// The reader's message (without its byte offsets).
        message: String,
        /// The reader's error.
        source: biblatex::ParseError,
    },
    /// The file looks like CSL-JSON but is not.
    #[error("CSL-JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is well-formed but not a CSL-JSON list of items.
    #[error("CSL-JSON: expected an array of items (or {{\"items\": [...]}})")]
    NotCslJson,
}

/// The format of a likes file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Bibtex,
    CslJson,
    Text,
}

/// Reads a likes file; the format is told by content (and extension as a hint).
pub fn read_likes(path: &Path) -> Result<Vec<Like>, LikesError> {
    let bytes = std::fs::read(path).map_err(|source| LikesError::Read {
        path: path.to_owned(),
        source,
    })?;
    let in_file = |source| LikesError::InFile {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        in_file(LikesError::NotUtf8 {
            line: line_of(&bytes, e.valid_up_to()),
        })
    })?;
    let hint = match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("bib") || e.eq_ignore_ascii_case("bibtex") => {
            Some(Format::Bibtex)
        }
        Some(e) if e.eq_ignore_ascii_case("json") => Some(Format::CslJson),
        _ => None,
    };
    let likes = parse_as(text, detect(text, hint)).map_err(in_file)?;
    if likes.is_empty() {
        return Err(LikesError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(likes)
}

/// Parses the text of a likes file, telling the format by its content.
pub fn parse_likes(text: &str) -> Result<Vec<Like>, LikesError> {
    parse_as(text, detect(text, None))
}

fn parse_as(text: &str, format: Format) -> Result<Vec<Like>, LikesError> {
    match format {
        Format::Bibtex => parse_bibtex(text),
        Format::CslJson => parse_csl_json(text),
        Format::Text => Ok(parse_text(text)),
    }
}

/// JSON starts with `[` or `{`; BibTeX has an `@type{` at the start of a line (comments
/// and preambles may come first); anything else is the text format. A `.bib` file with
/// no entry yet is BibTeX (empty), not a list of titles.
fn detect(text: &str, hint: Option<Format>) -> Format {
    let start = text.trim_start_matches('\u{feff}').trim_start();
    if start.starts_with('[') || start.starts_with('{') {
        return Format::CslJson;
    }
    if BIB_ENTRY.is_match(text) {
        return Format::Bibtex;
    }
    match hint {
        Some(Format::Bibtex) => Format::Bibtex,
        _ => Format::Text,
    }
}

static BIB_ENTRY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*@[A-Za-z]+\s*[{(]").expect("valid regex"));

/// arXiv ids: new style `YYMM.NNNN(N)` and old style `archive(.SC)/YYMMNNN`, with an
/// optional version that is dropped.
const ARXIV_ID: &str = r"(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?";

static ARXIV_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)arxiv\.org/(?:abs|pdf|html)/{ARXIV_ID}")).expect("valid regex")
});
static ARXIV_DOI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)^10\.48550/arxiv\.{ARXIV_ID}$")).expect("valid regex")
});
static ARXIV_PREFIXED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?i)\barxiv:\s*{ARXIV_ID}")).expect("valid regex"));
static ARXIV_BARE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"^{ARXIV_ID}$")).expect("valid regex"));
static DOI_IN_TEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(10\.\d{4,9}/[^\s"<>]+)"#).expect("valid regex"));

/// The arXiv id in an `arxiv.org` URL, an arXiv DOI, an `arXiv:` reference or a bare id.
fn arxiv_id_in(s: &str) -> Option<String> {
    let s = s.trim();
    [&*ARXIV_URL, &*ARXIV_PREFIXED, &*ARXIV_BARE]
        .iter()
        .find_map(|re| re.captures(s))
        .map(|c| c[1].to_owned())
        .or_else(|| {
            let doi = normalize_doi(s)?;
            ARXIV_DOI.captures(&doi).map(|c| c[1].to_owned())
        })
}

/// A DOI lowercased (DOIs are case-insensitive) without `doi:` or a resolver URL.
pub fn normalize_doi(s: &str) -> Option<String> {
    let m = DOI_IN_TEXT.captures(s.trim())?;
    let doi = m[1].trim_end_matches(['.', ',', ';']);
    Some(doi.to_lowercase())
}

fn non_empty(s: String) -> Option<String> {
    let t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!t.is_empty()).then_some(t)
}

/// One entry's fields by lowercased name; shared by the BibTeX and CSL-JSON readers so
/// both find arXiv ids in the same places.
struct Fields<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Fields<'_> {
    fn like(&self) -> Like {
        let get = self.get;
        let doi = get("doi").and_then(|d| normalize_doi(&d));
        let archive = get("archiveprefix")
            .or_else(|| get("eprinttype"))
            .or_else(|| get("archive"));
        let eprint_is_arxiv = archive
            .as_deref()
            .is_none_or(|a| a.eq_ignore_ascii_case("arxiv"));
        let arxiv_id = get("arxiv")
            .and_then(|s| arxiv_id_in(&s))
            .or_else(|| {
                get("eprint")
                    .filter(|_| eprint_is_arxiv)
                    .and_then(|s| arxiv_id_in(&s))
            })
            .or_else(|| doi.as_deref().and_then(arxiv_id_in))
            .or_else(|| {
                [
                    "url",
                    "number",
                    "note",
                    "journal",
                    "journaltitle",
                    "extra",
                    "container-title",
                    "howpublished",
                ]
                .iter()
                .filter_map(|k| get(k))
                .find_map(|s| {
                    ARXIV_URL
                        .captures(&s)
                        .or_else(|| ARXIV_PREFIXED.captures(&s))
                        .map(|c| c[1].to_owned())
                })
            });
        Like {
            arxiv_id,
            doi,
            title: get("title").and_then(non_empty),
            summary: get("abstract").and_then(non_empty),
        }
    }
}

fn parse_bibtex(text: &str) -> Result<Vec<Like>, LikesError> {
    let bib = Bibliography::parse(text).map_err(|source| LikesError::Bibtex {
        line: line_of(text.as_bytes(), source.span.start),
        message: source.kind.to_string(),
        source,
    })?;
    Ok(bib
        .iter()
        .map(|entry| {
            // Verbatim keeps the title's own case (format_sentence lowercases it).
            let get = |k: &str| entry.get(k).map(|chunks| chunks.format_verbatim());
            Fields { get: &get }.like()
        })
        .collect())
}

fn parse_csl_json(text: &str) -> Result<Vec<Like>, LikesError> {
    let value: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut o) => match o.remove("items") {
            Some(serde_json::Value::Array(items)) => items,
            _ => return Err(LikesError::NotCslJson),
        },
        _ => return Err(LikesError::NotCslJson),
    };
    Ok(items
        .iter()
        .filter_map(|item| item.as_object())
        .map(|item| {
            let get = |k: &str| {
                // CSL-JSON spells DOI and URL in capitals; numbers may be numbers.
                item.iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(k))
                    .and_then(|(_, v)| match v {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
            };
            Fields { get: &get }.like()
        })
        .collect())
}

/// One arXiv id, DOI or title a line. A line whose first non-blank character is `#` is
/// a comment, and so is the rest of a line after a `#` that follows a blank.
fn parse_text(text: &str) -> Vec<Like> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start_matches('\u{feff}');
            let line = match line.find(" #").or_else(|| line.find("\t#")) {
                Some(i) => &line[..i],
                None => line,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            if let Some(id) = arxiv_id_in(line) {
                let doi = normalize_doi(line).filter(|d| d.starts_with("10.48550/"));
                return Some(Like {
                    arxiv_id: Some(id),
                    doi,
                    ..Like::default()
                });
            }
            let looks_like_doi = line.starts_with("10.")
                || line.to_ascii_lowercase().starts_with("doi:")
                || line.contains("doi.org/");
            if looks_like_doi {
                if let Some(doi) = normalize_doi(line) {
                    return Some(Like {
                        doi: Some(doi),
                        ..Like::default()
                    });
                }
            }
            Some(Like {
                title: non_empty(line.to_owned()),
                ..Like::default()
            })
        })
        .collect()
}

/// The 1-based line of byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arxiv_ids_are_found_in_urls_dois_and_references_without_version() {
        for (s, id) in [
            ("https://arxiv.org/abs/2401.01234v2", "2401.01234"),
            ("http://arxiv.org/pdf/2401.01234v1.pdf", "2401.01234"),
            ("10.48550/arXiv.2310.06825", "2310.06825"),
            ("https://doi.org/10.48550/ARXIV.2310.06825", "2310.06825"),
            ("arXiv:1706.03762 [cs]", "1706.03762"),
            ("arXiv: 2401.0123", "2401.0123"),
            ("hep-th/9901001v3", "hep-th/9901001"),
            ("math.GT/0309136", "math.GT/0309136"),
        ] {
            assert_eq!(arxiv_id_in(s).as_deref(), Some(id), "{s}");
        }
        assert_eq!(arxiv_id_in("10.1103/PhysRevD.1.1"), None);
        assert_eq!(arxiv_id_in("Attention is all you need"), None);
    }

    #[test]
    fn text_lines_are_ids_dois_or_titles_and_comments_are_skipped() {
        let likes = parse_likes(
            "# my reading list\n\
             2401.01234v2\n\
             \n\
             https://arxiv.org/abs/1706.03762  # the transformer\n\
             doi:10.1103/PhysRevD.1.1\n\
             10.48550/arXiv.2310.06825\n\
             Score-Based Generative Modeling through Stochastic Differential Equations\n",
        )
        .unwrap();
        assert_eq!(likes.len(), 5);
        assert_eq!(likes[0].arxiv_id.as_deref(), Some("2401.01234"));
        assert_eq!(likes[1].arxiv_id.as_deref(), Some("1706.03762"));
        assert_eq!(likes[2].doi.as_deref(), Some("10.1103/physrevd.1.1"));
        assert_eq!(likes[2].arxiv_id, None);
        assert_eq!(likes[3].arxiv_id.as_deref(), Some("2310.06825"));
        assert_eq!(likes[3].doi.as_deref(), Some("10.48550/arxiv.2310.06825"));
        assert_eq!(
            likes[4].title.as_deref(),
            Some("Score-Based Generative Modeling through Stochastic Differential Equations")
        );
    }

    #[test]
    fn bibtex_entries_give_arxiv_ids_from_eprint_url_doi_and_number() {
        let likes = parse_likes(
            r#"@comment{jabref-meta: x}
@article{a, title = {{Attention} Is All You Need}, eprint = {1706.03762v7},
  archivePrefix = {arXiv}, abstract = {The dominant sequence
  transduction models.}}
@misc{b, title = {Mistral 7B}, doi = {10.48550/arXiv.2310.06825}, number = {arXiv:2310.06825}}
@article{c, title = {Other}, url = {http://arxiv.org/abs/2401.01234v2}}
@article{d, title = {Not arXiv}, eprint = {12345}, eprinttype = {pubmed}, doi = {10.1000/XYZ}}
"#,
        )
        .unwrap();
        assert_eq!(likes.len(), 4);
        assert_eq!(likes[0].arxiv_id.as_deref(), Some("1706.03762"));
        assert_eq!(likes[0].title.as_deref(), Some("Attention Is All You Need"));
        assert_eq!(
            likes[0].summary.as_deref(),
            Some("The dominant sequence transduction models.")
        );
        assert_eq!(likes[1].arxiv_id.as_deref(), Some("2310.06825"));
        assert_eq!(likes[2].arxiv_id.as_deref(), Some("2401.01234"));
        assert_eq!(likes[3].arxiv_id, None);
        assert_eq!(likes[3].doi.as_deref(), Some("10.1000/xyz"));
    }

    #[test]
    fn bibtex_errors_name_the_line() {
        let err =
            parse_likes("@article{a, title = {ok}}\n\n@article{b, title = {open\n").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LikesError::Bibtex { .. }), "{msg}");
        assert!(
            msg.starts_with("line 3:") || msg.starts_with("line 4:"),
            "{msg}"
        );
    }

    #[test]
    fn csl_json_items_give_dois_urls_and_abstracts() {
        let likes = parse_likes(
            r#"[{"id":"x","type":"article","title":"Mistral 7B","URL":"http://arxiv.org/abs/2310.06825v1",
                 "abstract":"We introduce Mistral 7B.","number":"arXiv:2310.06825"},
                {"id":"y","type":"article-journal","title":"Other","DOI":"10.1000/ABC","page":12}]"#,
        )
        .unwrap();
        assert_eq!(likes.len(), 2);
        assert_eq!(likes[0].arxiv_id.as_deref(), Some("2310.06825"));
        assert_eq!(
            likes[0].summary.as_deref(),
            Some("We introduce Mistral 7B.")
        );
        assert_eq!(likes[1].doi.as_deref(), Some("10.1000/abc"));
        assert!(matches!(parse_likes("[1, 2"), Err(LikesError::Json(_))));
        assert!(matches!(
            parse_likes("{\"a\": 1}"),
            Err(LikesError::NotCslJson)
        ));
    }

    fn fixture(name: &str) -> Vec<Like> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/likes")
            .join(name);
        read_likes(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_real_zotero_bibtex_export_gives_arxiv_ids_titles_and_abstracts() {
        let likes = fixture("zotero-arxiv.bib");
        let ids: Vec<_> = likes
            .iter()
            .map(|l| l.arxiv_id.as_deref().unwrap())
            .collect();
        // Two from the note/URL only, two also from the DataCite DOI.
        assert_eq!(
            ids,
            ["2203.07687", "2208.09684", "2009.14167", "2206.06522"]
        );
        assert_eq!(likes[2].doi.as_deref(), Some("10.48550/arxiv.2009.14167"));
        assert_eq!(likes[0].doi, None);
        assert_eq!(
            likes[3].title.as_deref(),
            Some("LST: Ladder Side-Tuning for Parameter and Memory Efficient Transfer Learning")
        );
        let summary = likes[1].summary.as_deref().unwrap();
        assert!(summary.starts_with("Quantization, knowledge distillation, and magnitude pruning"));
        assert!(likes
            .iter()
            .all(|l| l.summary.as_ref().is_some_and(|s| s.len() > 500)));
    }

    #[test]
    fn a_real_better_bibtex_library_keeps_pubmed_eprints_out_of_arxiv_ids() {
        let likes = fixture("bbt-library-excerpt.bib");
        assert_eq!(likes.len(), 7);
        assert!(likes.iter().all(|l| l.arxiv_id.is_none()), "{likes:?}");
        let dois: Vec<_> = likes.iter().filter_map(|l| l.doi.as_deref()).collect();
        assert_eq!(
            dois,
            ["10.1016/j.neuron.2011.03.026", "10.1016/j.nlm.2013.11.007"]
        );
        assert_eq!(
            likes[1].title.as_deref(),
            Some("Neural Network Models and Schizophrenia")
        );
        // Case-protecting braces are gone from titles.
        let title = likes[2].title.as_deref().unwrap();
        assert!(
            title.contains("Dopamine D2 Receptor Ligand [11C]FLB 457."),
            "{title}"
        );
    }

    #[test]
    fn real_csl_json_exports_give_dois_arxiv_ids_and_abstracts() {
        let bbt = fixture("bbt-pandoc-citation.csl.json");
        assert_eq!(bbt.len(), 4);
        assert_eq!(bbt[1].doi.as_deref(), Some("10.1484/j.se.2.303788"));
        assert!(bbt[0].title.as_deref().unwrap().contains("Huaynaputina"));
        let zotero = fixture("zotero-items.csl.json");
        assert_eq!(zotero.len(), 2);
        assert_eq!(zotero[0].arxiv_id, None);
        assert_eq!(zotero[1].arxiv_id.as_deref(), Some("2306.13455"));
        assert_eq!(
            zotero[1].title.as_deref(),
            Some("DreamEditor: Text-Driven 3D Scene Editing with Neural Fields")
        );
        assert!(zotero[1]
            .summary
            .as_deref()
            .unwrap()
            .starts_with("Neural fields have achieved"));
    }

    #[test]
    fn read_likes_names_the_file_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("library.json");
        std::fs::write(&path, "[{").unwrap();
        let msg = read_likes(&path).unwrap_err().to_string();
        assert!(
            msg.contains("library.json") && msg.contains("line 1"),
            "{msg}"
        );
        let missing = dir.path().join("missing.bib");
        assert!(matches!(read_likes(&missing), Err(LikesError::Read { .. })));
        let empty = dir.path().join("empty.bib");
        std::fs::write(&empty, "% nothing yet\n").unwrap();
        let msg = read_likes(&empty).unwrap_err().to_string();
        assert!(
            msg.contains("empty.bib") && msg.contains("names no paper"),
            "{msg}"
        );
    }
}
