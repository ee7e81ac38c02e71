//! Hugging Face Daily Papers: text capture, HTML page, JSON API.
//!
//! One format name, three shapes of the same listing, told apart by content:
//!
//! - **Text capture** ([`text`]; select-all, copy, paste of huggingface.co/papers or a
//!   search or trending page): a header, then per paper a title paragraph, a summary
//!   paragraph and a meta block ("• 8 authors" / "·" / "Feb 5, 2024"). Parsed by
//!   structure, see [`parse_text`].
//! - **HTML page** ([`html`]; `/papers`, `/papers/date/YYYY-MM-DD`, trending, search):
//!   the server embeds the list as JSON in the `data-props` attribute of
//!   `div[data-target="DailyPapers"]`; without it, the visible cards are read. See
//!   [`parse_html`].
//! - **JSON API** ([`json`]; `/api/daily_papers`): an array of `{ paper { id, title,
//!   summary, authors [{ name }], publishedAt, upvotes }, title, publishedAt,
//!   numComments }`, read through typed serde structs. See [`parse_json`].
//!
//! The HTML page and the API give the arXiv id, which becomes `arxiv_id` and the link
//! `https://huggingface.co/papers/<id>`; the text capture gives no id, so its entries
//! are known by their normalized title, which the HTML and JSON entries also carry.

mod html;
mod json;
mod text;

use url::Url;

pub use html::parse_html;
pub use json::parse_json;
pub use text::parse_text;

use super::{page_kind, PageFormat, PageKind, ParseContext, ParseError, Reading};

/// The format name used in config and on entries.
pub const NAME: &str = "hf-papers";

/// Hugging Face Daily Papers in any of its three shapes (text capture, HTML, JSON).
pub struct HfPapers;

impl PageFormat for HfPapers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognize(&self, text: &str, ctx: &ParseContext<'_>) -> Option<Result<Reading, ParseError>> {
        let entries = match page_kind(text) {
            PageKind::Markup => {
                return html::sniff(text, ctx).then(|| parse_html(text, ctx).map(Reading::from))
            }
            PageKind::Json => json::papers_in_text(text, ctx)?,
            PageKind::Text => text::recognize(text, ctx)?,
        };
        (!entries.is_empty()).then_some(Ok(entries.into()))
    }

    fn parse(&self, text: &str, ctx: &ParseContext<'_>) -> Result<Reading, ParseError> {
        match page_kind(text) {
            PageKind::Markup => parse_html(text, ctx),
            PageKind::Json => parse_json(text, ctx),
            PageKind::Text => parse_text(text, ctx),
        }
        .map(Reading::from)
    }

    /// The papers page's search: a text capture carries no links, and the title finds
    /// the paper.
    fn link_by_title(&self, title: &str) -> Option<String> {
        let query: String = url::form_urlencoded::byte_serialize(title.as_bytes()).collect();
        Some(format!("https://huggingface.co/papers?q={query}"))
    }
}

/// `https://huggingface.co/papers/<id>`: the link of a paper known by its arXiv id, in
/// the JSON and the HTML alike.
fn paper_link(id: &str) -> Option<String> {
    Url::parse("https://huggingface.co/papers/")
        .ok()?
        .join(id)
        .ok()
        .map(String::from)
}
