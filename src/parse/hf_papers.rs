//! Hugging Face Daily Papers: text capture, HTML page, JSON API.

use super::{PageFormat, ParseContext, ParseError};
use crate::entry::Entry;

/// The text capture of a Daily Papers page (select-all, copy, paste).
pub struct HfPapersText;

impl PageFormat for HfPapersText {
    fn name(&self) -> &'static str {
        "hf-papers"
    }
    fn sniff(&self, _text: &str, _ctx: &ParseContext<'_>) -> bool {
        false
    }
    fn parse(&self, _text: &str, _ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
        Ok(Vec::new())
    }
}
