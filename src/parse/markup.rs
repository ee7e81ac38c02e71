//! HTML reading shared by the HTML formats: selectors that fail as parse errors,
//! readable element text, absolute links, and "cards" (the repeated item blocks of a
//! listing page, found by structure rather than by class names).

use std::collections::HashMap;

use scraper::{ElementRef, Html, Node, Selector};
use url::Url;

use super::ParseError;
use crate::entry::clean_text;

/// Deepest element nesting we hand to the HTML parser. html5ever's tree builder is
/// quadratic in nesting depth (20,000 nested `<div>`s, 100 KB, take a minute), so a
/// hostile or broken page must be refused before parsing. Real listing pages nest a few
/// dozen levels; even heavy front-end markup stays far below this.
pub const MAX_NESTING: usize = 1000;

/// Parses an HTML document after checking its nesting depth (see [`MAX_NESTING`]).
pub fn parse_document(format: &'static str, text: &str) -> Result<Html, ParseError> {
    let depth = nesting_depth(text);
    if depth > MAX_NESTING {
        return Err(ParseError::Malformed {
            format,
            reason: format!(
                "HTML nests deeper than {MAX_NESTING} elements (at least {depth}); refused"
            ),
        });
    }
    Ok(Html::parse_document(text))
}

/// Estimates the deepest element nesting of an HTML text in one pass over its tags,
/// without building a tree: start tags open, end tags close, void and self-closed
/// elements and elements whose end tag is optional (`p`, `li`, `td`, ...: the parser
/// closes those itself) do not count, and script, style and comment bodies are
/// skipped. The estimate stops as soon as it passes [`MAX_NESTING`].
pub fn nesting_depth(text: &str) -> usize {
    const NOT_NESTING: &[&str] = &[
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup",
        "thead", "tbody", "tfoot", "colgroup", "rb", "rt", "rp", "html", "head", "body",
    ];
    let lower = text.to_ascii_lowercase();
    let b = lower.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while let Some(off) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'<')) {
        i += off + 1;
        let rest = b.get(i..).unwrap_or(&[]);
        if rest.starts_with(b"!--") {
            i = find(b, i, b"-->").unwrap_or(b.len());
            continue;
        }
        let closing = rest.first() == Some(&b'/');
        let name_start = if closing { i + 1 } else { i };
        let name_len = b.get(name_start..).map_or(0, |r| {
            r.iter().take_while(|c| c.is_ascii_alphanumeric()).count()
        });
        if name_len == 0 || !b.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let name = lower.get(name_start..name_start + name_len).unwrap_or("");
        let tag_end = find(b, name_start, b">").unwrap_or(b.len());
        let self_closed = b.get(tag_end.saturating_sub(1)) == Some(&b'/');
        if closing {
            if !NOT_NESTING.contains(&name) {
                depth = depth.saturating_sub(1);
            }
        } else if matches!(name, "script" | "style" | "textarea" | "title") {
            // Raw text: nothing inside is a tag.
            let close = format!("</{name}");
            i = find(b, tag_end, close.as_bytes()).unwrap_or(b.len());
            continue;
        } else if !self_closed && !NOT_NESTING.contains(&name) {
            depth += 1;
            max = max.max(depth);
            if max > MAX_NESTING {
                return max;
            }
        }
        i = tag_end;
    }
    max
}

/// Position of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Compiles a CSS selector; a bad one is a [`ParseError::Malformed`] for `format`, never
/// a panic (config selectors are user input).
pub fn selector(format: &'static str, css: &str) -> Result<Selector, ParseError> {
    Selector::parse(css).map_err(|e| ParseError::Malformed {
        format,
        reason: format!("invalid CSS selector {css:?}: {e}"),
    })
}

/// The text a reader sees in an element: block elements and `<br>` separate words,
/// scripts and styles are skipped, whitespace is collapsed with [`clean_text`].
///
/// Walks the tree with an explicit stack so a deeply nested (or hostile) page cannot
/// overflow the call stack.
pub fn text_of(el: ElementRef<'_>) -> String {
    let mut out = String::new();
    let mut stack = vec![(*el, false)];
    while let Some((node, closing)) = stack.pop() {
        match node.value() {
            Node::Text(text) => out.push_str(text),
            Node::Element(e) => {
                let name = e.name();
                let block = is_block(name);
                if closing {
                    if block {
                        out.push(' ');
                    }
                    continue;
                }
                if matches!(name, "script" | "style" | "template" | "noscript" | "svg") {
                    continue;
                }
                if block || name == "br" {
                    out.push(' ');
                }
                stack.push((node, true));
                let mut child = node.last_child();
                while let Some(c) = child {
                    stack.push((c, false));
                    child = c.prev_sibling();
                }
            }
            _ => {}
        }
    }
    clean_text(&out)
}

/// Elements whose boundaries separate words in rendered text.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "dd"
            | "div"
            | "dl"
            | "dt"
            | "figcaption"
            | "figure"
            | "footer"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hr"
            | "li"
            | "main"
            | "nav"
            | "ol"
            | "p"
            | "pre"
            | "section"
            | "table"
            | "td"
            | "th"
            | "tr"
            | "ul"
            | "time"
    )
}

/// The readable text of an HTML fragment (an RSS description, a JSON summary with tags).
/// Text without any tag is only whitespace-collapsed, so "a < b" survives.
pub fn fragment_text(fragment: &str) -> String {
    if !fragment.contains('<') && !fragment.contains('&') {
        return clean_text(fragment);
    }
    if nesting_depth(fragment) > MAX_NESTING {
        // Too deep to parse safely: keep the text between the tags.
        return clean_text(&strip_tags(fragment));
    }
    let html = Html::parse_fragment(fragment);
    text_of(html.root_element())
}

/// Drops everything between `<` and `>`: a last-resort reading of markup.
fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Resolves an `href` to an absolute http(s) URL against `base`. Fragment-only,
/// `javascript:` and other non-web links give `None`.
pub fn resolve_link(href: &str, base: Option<&Url>) -> Option<String> {
    let href = href.trim();
    if href.is_empty() || href.starts_with('#') {
        return None;
    }
    let url = match Url::parse(href) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => base?.join(href).ok()?,
        Err(_) => return None,
    };
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

/// The first element matching `sel` inside `scope`.
pub fn first<'a>(scope: ElementRef<'a>, sel: &Selector) -> Option<ElementRef<'a>> {
    scope.select(sel).next()
}

/// The lower-case words of a class name: split at `-`, `_` and camelCase humps, so
/// `summary-source`, `summary_source` and `SummarySource` all give `["summary", "source"]`.
pub fn class_words(class: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in class.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Whether `outer` is `inner` or one of its ancestors.
pub fn contains(outer: ElementRef<'_>, inner: ElementRef<'_>) -> bool {
    outer.id() == inner.id() || inner.ancestors().any(|a| a.id() == outer.id())
}

/// One repeated item block of a listing page.
#[derive(Debug, Clone, Copy)]
pub struct Card<'a> {
    /// The item's container: the largest ancestor of `title` holding no other title.
    pub root: ElementRef<'a>,
    /// The element the title was found in.
    pub title: ElementRef<'a>,
}

/// Finds the item blocks of a listing page by structure: each element matching
/// `title_sel` is one item's title, and its card is the largest ancestor that contains
/// no other title. Works whatever the site calls its classes, so a redesign that keeps
/// "a list of blocks, each with a heading" still parses.
pub fn cards<'a>(doc: &'a Html, title_sel: &Selector) -> Vec<Card<'a>> {
    let titles: Vec<ElementRef<'a>> = doc.select(title_sel).collect();
    // How many titles each ancestor holds; a card stops growing below a shared one.
    let mut held = HashMap::new();
    for t in &titles {
        for anc in t.ancestors() {
            *held.entry(anc.id()).or_insert(0usize) += 1;
        }
    }
    titles
        .into_iter()
        .map(|title| {
            let mut root = title;
            while let Some(parent) = root.parent().and_then(ElementRef::wrap) {
                let name = parent.value().name();
                if held.get(&parent.id()).copied().unwrap_or(0) > 1
                    || matches!(name, "body" | "html" | "main")
                {
                    break;
                }
                root = parent;
            }
            Card { root, title }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_separates_blocks_and_skips_scripts() {
        let html =
            Html::parse_fragment("<div><p>a<b>b</b></p><p>c</p><script>x()</script>d<br>e</div>");
        assert_eq!(text_of(html.root_element()), "ab c d e");
    }

    #[test]
    fn fragment_text_decodes_entities_and_keeps_plain_text() {
        assert_eq!(fragment_text("<p>Fish &amp; chips</p>"), "Fish & chips");
        assert_eq!(fragment_text(" a < b  "), "a < b");
    }

    #[test]
    fn links_resolve_against_the_page() {
        let base = Url::parse("https://example.com/blog/index.html").ok();
        assert_eq!(
            resolve_link("post/1", base.as_ref()).as_deref(),
            Some("https://example.com/blog/post/1")
        );
        assert_eq!(
            resolve_link("/a", base.as_ref()).as_deref(),
            Some("https://example.com/a")
        );
        assert_eq!(resolve_link("/a", None), None);
        assert_eq!(resolve_link("javascript:void(0)", base.as_ref()), None);
        assert_eq!(resolve_link("#top", base.as_ref()), None);
    }

    #[test]
    fn nesting_depth_counts_only_real_nesting() {
        assert_eq!(nesting_depth("<div><div><span>x</span></div></div>"), 3);
        assert_eq!(
            nesting_depth("<ul><li>a<li>b<li>c</ul><br><img src=x><p>x<p>y"),
            1
        );
        assert_eq!(
            nesting_depth("<script>for(i=0;i<n;i++){}</script><!-- <div><div> --><div/>"),
            0
        );
        assert_eq!(nesting_depth(&"<div>".repeat(5000)), MAX_NESTING + 1);
        assert!(parse_document("t", &"<b>".repeat(5000)).is_err());
        assert_eq!(
            fragment_text(&format!(
                "{}deep{}",
                "<i>".repeat(2000),
                "</i>".repeat(2000)
            )),
            "deep"
        );
    }

    #[test]
    fn class_words_split_dashes_and_humps() {
        assert_eq!(class_words("summary-source"), ["summary", "source"]);
        assert_eq!(class_words("SummarySource"), ["summary", "source"]);
        assert_eq!(class_words("doc_publisher2"), ["doc", "publisher2"]);
    }

    #[test]
    fn cards_are_the_largest_blocks_with_one_title() {
        let html = Html::parse_document(
            "<body><ul><li><div><h3><a href='/1'>One</a></h3></div><p>s1</p></li>\
             <li><h3><a href='/2'>Two</a></h3><p>s2</p></li></ul></body>",
        );
        let sel = Selector::parse("h3").unwrap();
        let found = cards(&html, &sel);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].root.value().name(), "li");
        assert_eq!(text_of(found[1].root), "Two s2");
    }
}
