//! AITopics listing: text capture, HTML page.

use super::{PageFormat, ParseContext, ParseError};
use crate::entry::Entry;

/// The text capture of an AITopics listing page.
pub struct AiTopicsText;

impl PageFormat for AiTopicsText {
    fn name(&self) -> &'static str {
        "aitopics"
    }
    fn sniff(&self, _text: &str, _ctx: &ParseContext<'_>) -> bool {
        false
    }
    fn parse(&self, _text: &str, _ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
        Ok(Vec::new())
    }
}
