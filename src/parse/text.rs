//! Shared reading of text captures (select-all, copy, paste of a listing page).
//!
//! A text capture has no markup left, only layout: blocks of lines separated by blank
//! lines. The site parsers work on that structure, so this module splits a capture into
//! paragraphs and answers the questions they all ask: is this line blank, is this block
//! a title or prose?

/// Whether a line is blank as a reader sees it: nothing but whitespace, including
/// non-breaking and zero-width spaces and a stray BOM, which real captures contain.
pub fn is_blank(line: &str) -> bool {
    line.chars().all(is_space)
}

/// Whitespace as captures contain it: Unicode White_Space (NBSP included) plus the
/// zero-width characters browsers copy along.
pub fn is_space(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{feff}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}'
        )
}

/// Trims capture whitespace (see [`is_space`]) from both ends.
pub fn trim(line: &str) -> &str {
    line.trim_matches(is_space)
}

/// Splits text into paragraphs: runs of non-blank lines, each line trimmed. Any number
/// of blank lines separates paragraphs; none are empty.
pub fn paragraphs(text: &str) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if is_blank(line) {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push(trim(line));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whether a block of text reads as prose (an abstract, a teaser) rather than a title or
/// a name: long, or ending a sentence after several words. Titles are short and rarely
/// end with a full stop; summaries are long or do.
pub fn is_prose(text: &str) -> bool {
    let chars = text.chars().count();
    if chars >= 250 {
        return true;
    }
    let words = text.split_whitespace().count();
    let ends_sentence = text.ends_with(['.', '!', '…']) && !text.ends_with("et al.");
    (ends_sentence && words >= 8) || (words >= 15 && has_sentence_break(text))
}

/// Whether text holds a sentence break: ". " followed by a capital letter.
fn has_sentence_break(text: &str) -> bool {
    text.match_indices(". ").any(|(i, _)| {
        text.get(i + 2..)
            .and_then(|rest| rest.chars().next())
            .is_some_and(char::is_uppercase)
    })
}

/// Whether a line could be a title: a single short line that is not prose.
pub fn is_title_like(text: &str) -> bool {
    !text.is_empty() && text.chars().count() <= 300 && !is_prose(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nbsp_and_trailing_space_lines_are_blank() {
        assert!(is_blank("  \u{a0} \t"));
        assert!(is_blank("\u{feff}"));
        assert!(!is_blank(" a "));
    }

    #[test]
    fn paragraphs_split_on_any_blank_run() {
        let text = "a\n\u{a0}\nb\nc\n\n\n  \nd  ";
        assert_eq!(paragraphs(text), vec![vec!["a"], vec!["b", "c"], vec!["d"]]);
    }

    #[test]
    fn titles_and_prose_are_told_apart() {
        assert!(is_title_like("Gradient is All You Need?"));
        assert!(is_title_like("Al Jazeera"));
        assert!(!is_prose("Objects in Generated Videos Are Slower Than They Appear: Models Suffer Sub-Earth Gravity and Don't Know Galileo's Principle...for now"));
        assert!(is_prose(
            "We study things. We find that they are other things in many cases."
        ));
        assert!(is_prose(&"word ".repeat(60)));
    }
}
