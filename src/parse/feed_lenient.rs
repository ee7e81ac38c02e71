//! The lenient second reading of feeds that feed-rs refuses or reads as empty: a
//! malformed document (a mismatched end tag, an undefined entity, a truncated file),
//! a feed in a dialect feed-rs does not know (CDF, an RSS root with an odd version,
//! items in a namespace it does not expect), and JSON Feeds with a field of the wrong
//! type. This is how feedparser reads what it calls "bozo" feeds: keep every item seen
//! up to the fault.
//!
//! XML is read as a stream of events with quick-xml (end names unchecked, so one wrong
//! end tag costs nothing); an `item` or `entry` element, whatever its namespace or
//! case, is an entry, and its children are taken by their local names. JSON Feed is
//! read as a `serde_json::Value`, each field taken only when it has the expected type.

use quick_xml::events::{BytesStart, Event};

/// One item as the lenient reader saw it; the caller turns it into an [`crate::entry::Entry`]
/// with the same rules as feed-rs's items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LenientItem {
    /// Title, as markup (entities decoded once, tags kept for the caller to strip).
    pub title: Option<String>,
    /// Links: (rel, href), in document order.
    pub links: Vec<(Option<String>, String)>,
    /// guid / id.
    pub id: Option<String>,
    /// Summary or description, as markup.
    pub summary: Option<String>,
    /// Full content, as markup.
    pub content: Option<String>,
    /// Published date text (pubDate, published, issued, dc:date, created).
    pub published: Option<String>,
    /// Updated date text (updated, modified).
    pub updated: Option<String>,
    /// Author names or addresses.
    pub authors: Vec<String>,
}

/// What the lenient reader found in a document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LenientFeed {
    /// The channel's or feed's title, as markup.
    pub title: Option<String>,
    /// Every item, in document order, up to the fault if there is one.
    pub items: Vec<LenientItem>,
    /// Where reading stopped early, if it did.
    pub fault: Option<String>,
}

/// The field of an item an element's text goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Title,
    Link,
    Id,
    Summary,
    Content,
    Published,
    Updated,
    Author,
}

/// Which field an item child's local name (lower case) fills.
fn field_of(local: &str) -> Option<Field> {
    Some(match local {
        "title" => Field::Title,
        "link" => Field::Link,
        "guid" | "id" => Field::Id,
        "description" | "summary" | "abstract" | "tagline" | "subtitle" => Field::Summary,
        "content" | "encoded" | "body" | "fullitem" => Field::Content,
        "pubdate" | "published" | "issued" | "date" | "created" | "dcterms:issued" => {
            Field::Published
        }
        "updated" | "modified" | "lastbuilddate" => Field::Updated,
        "author" | "creator" | "contributor" | "managingeditor" => Field::Author,
        _ => return None,
    })
}

/// The local name of an element, lower-cased (`a10:link` -> `link`, `ITEM` -> `item`).
fn local_name(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).to_ascii_lowercase()
}

/// An attribute's value, entities decoded when they can be.
fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.html_attributes().flatten().find_map(|a| {
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).to_ascii_lowercase();
        (key == name).then(|| {
            let raw = String::from_utf8_lossy(&a.value);
            match quick_xml::escape::unescape(&raw) {
                Ok(v) => v.into_owned(),
                Err(_) => raw.into_owned(),
            }
        })
    })
}

/// The text of a general entity reference: XML's five, numeric references, and any
/// other name kept as written (`&nbsp;`) for the HTML reading of the field to decode.
fn entity_text(name: &str) -> String {
    match name {
        "lt" => "<".into(),
        "gt" => ">".into(),
        "amp" => "&".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        _ => {
            let number = name
                .strip_prefix("#x")
                .or_else(|| name.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()));
            match number.and_then(char::from_u32) {
                Some(c) => c.to_string(),
                None => format!("&{name};"),
            }
        }
    }
}

/// Reads an XML feed leniently; see the module docs.
pub fn read_xml(text: &str) -> LenientFeed {
    let mut reader = quick_xml::Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.expand_empty_elements = true;
    config.allow_dangling_amp = true;
    config.trim_text(false);

    let mut feed = LenientFeed::default();
    // Local names of the open elements.
    let mut stack: Vec<String> = Vec::new();
    // The item being read and the stack depth of its element.
    let mut item: Option<(LenientItem, usize)> = None;
    // The field being collected, the stack depth of its element, and its text so far.
    let mut field: Option<(Field, usize, String)> = None;
    // Collecting the channel title (depth of the title element).
    let mut channel_title: Option<(usize, String)> = None;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                feed.fault = Some(format!("at byte {}: {e}", reader.error_position()));
                break;
            }
        };
        match event {
            Event::Start(e) => {
                let name = local_name(&e);
                stack.push(name.clone());
                let depth = stack.len();
                if let Some((_, _, buf)) = field.as_mut() {
                    // Markup inside a field (XHTML content): keep it as markup.
                    buf.push('<');
                    buf.push_str(&name);
                    buf.push('>');
                    continue;
                }
                match item.as_mut() {
                    None if name == "item" || name == "entry" => {
                        item = Some((LenientItem::default(), depth));
                    }
                    None if name == "title"
                        && feed.title.is_none()
                        && depth >= 2
                        && matches!(
                            stack[depth - 2].as_str(),
                            "channel" | "feed" | "rss" | "rdf"
                        ) =>
                    {
                        channel_title = Some((depth, String::new()));
                    }
                    Some((current, item_depth)) if depth == *item_depth + 1 => {
                        let Some(f) = field_of(&name) else { continue };
                        if f == Field::Link {
                            if let Some(href) = attr(&e, "href") {
                                current.links.push((attr(&e, "rel"), href));
                            }
                        }
                        field = Some((f, depth, String::new()));
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                // Recover as HTML parsers do: an end tag closes the nearest open element
                // of its name and everything inside it; one that matches no open element
                // is ignored.
                let name = String::from_utf8_lossy(e.local_name().as_ref()).to_ascii_lowercase();
                let Some(target) = stack.iter().rposition(|n| *n == name) else {
                    continue;
                };
                if let Some((_, d, buf)) = field.as_mut() {
                    if target + 1 > *d {
                        // Markup inside the field (XHTML content).
                        buf.push_str("</");
                        buf.push_str(&name);
                        buf.push('>');
                        stack.truncate(target);
                        continue;
                    }
                }
                while stack.len() > target {
                    let depth = stack.len();
                    if field.as_ref().is_some_and(|(_, d, _)| *d == depth) {
                        if let (Some((f, _, buf)), Some((current, _))) =
                            (field.take(), item.as_mut())
                        {
                            store(current, f, buf);
                        }
                    }
                    if channel_title.as_ref().is_some_and(|(d, _)| *d == depth) {
                        feed.title = channel_title.take().map(|(_, t)| t);
                    }
                    if item.as_ref().is_some_and(|(_, d)| *d == depth) {
                        if let Some((current, _)) = item.take() {
                            feed.items.push(current);
                        }
                    }
                    stack.pop();
                }
            }
            Event::Text(t) => {
                let text = t.decode().map(|c| c.into_owned()).unwrap_or_default();
                push_text(&mut field, &mut channel_title, &text);
            }
            Event::CData(t) => {
                let text = t.decode().map(|c| c.into_owned()).unwrap_or_default();
                push_text(&mut field, &mut channel_title, &text);
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map(|c| c.into_owned()).unwrap_or_default();
                push_text(&mut field, &mut channel_title, &entity_text(&name));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    // A document cut short inside an item still gave that item.
    if let Some((mut current, _)) = item.take() {
        if let Some((f, _, buf)) = field.take() {
            store(&mut current, f, buf);
        }
        feed.items.push(current);
        feed.fault
            .get_or_insert_with(|| "the document ends inside an item".to_owned());
    }
    feed
}

/// Appends text to whatever is being collected.
fn push_text(
    field: &mut Option<(Field, usize, String)>,
    channel_title: &mut Option<(usize, String)>,
    text: &str,
) {
    if let Some((_, _, buf)) = field.as_mut() {
        buf.push_str(text);
    } else if let Some((_, buf)) = channel_title.as_mut() {
        buf.push_str(text);
    }
}

/// Files a finished field's text into the item; the first value of a field wins.
fn store(item: &mut LenientItem, field: Field, text: String) {
    let text = text.trim().to_owned();
    if text.is_empty() {
        return;
    }
    let slot = match field {
        Field::Title => &mut item.title,
        Field::Id => &mut item.id,
        Field::Summary => &mut item.summary,
        Field::Content => &mut item.content,
        Field::Published => &mut item.published,
        Field::Updated => &mut item.updated,
        Field::Link => {
            // RSS <link>URL</link>; Atom links were taken from `href`.
            if !text.contains('<') {
                item.links.push((None, text));
            }
            return;
        }
        Field::Author => {
            item.authors.push(text);
            return;
        }
    };
    if slot.is_none() {
        *slot = Some(text);
    }
}

/// Reads a JSON Feed leniently: every field of the wrong type is skipped, any
/// `version` is accepted. `None` when the text is not a JSON object with `items`.
pub fn read_json(text: &str) -> Option<LenientFeed> {
    use serde_json::Value;
    let doc: Value = serde_json::from_str(text).ok()?;
    let items = doc.get("items")?.as_array()?;
    let string = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|s| !s.trim().is_empty())
    };
    let names = |v: &Value| -> Vec<String> {
        let one = v.get("author").into_iter();
        let many = v
            .get("authors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        one.chain(many)
            .filter_map(|a| match a {
                Value::String(s) => Some(s.clone()),
                _ => a.get("name").and_then(Value::as_str).map(str::to_owned),
            })
            .filter(|s| !s.trim().is_empty())
            .collect()
    };
    Some(LenientFeed {
        title: string(&doc, "title"),
        items: items
            .iter()
            .filter(|i| i.is_object())
            .map(|i| LenientItem {
                title: string(i, "title"),
                links: ["url", "external_url"]
                    .into_iter()
                    .filter_map(|k| string(i, k))
                    .map(|href| (None, href))
                    .collect(),
                // JSON Feed 1.0 allows numeric ids in practice.
                id: string(i, "id")
                    .or_else(|| i.get("id").and_then(Value::as_i64).map(|n| n.to_string())),
                summary: string(i, "summary"),
                content: string(i, "content_html").or_else(|| string(i, "content_text")),
                published: string(i, "date_published"),
                updated: string(i, "date_modified"),
                authors: names(i),
            })
            .collect(),
        fault: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_end_tag_and_prefixed_links_are_read() {
        let feed = read_xml(
            "<rss><channel><title>T</title><item><title>One</b></title>\
             <a10:link href=\"https://e.org/1\"/></item>\
             <item><title>Two &amp; &nbsp;x</title><link>https://e.org/2</link></item></channel></rss>",
        );
        assert_eq!(feed.title.as_deref(), Some("T"));
        assert_eq!(feed.items.len(), 2);
        assert_eq!(
            feed.items[0].links,
            vec![(None, "https://e.org/1".to_owned())]
        );
        assert_eq!(feed.items[1].title.as_deref(), Some("Two & &nbsp;x"));
    }

    #[test]
    fn a_cut_document_keeps_the_items_before_the_cut() {
        let feed = read_xml("<feed><entry><id>a</id></entry><entry><id>b</id><title>B");
        assert_eq!(feed.items.len(), 2);
        assert!(feed.fault.is_some());
    }

    #[test]
    fn json_fields_of_the_wrong_type_are_skipped() {
        let feed = read_json(
            r#"{"version":"http://jsonfeed.org/version/1","items":[{"id":1,"title":"A","tags":"a,b","url":5}]}"#,
        )
        .unwrap();
        assert_eq!(feed.items[0].title.as_deref(), Some("A"));
        assert_eq!(feed.items[0].id.as_deref(), Some("1"));
        assert!(feed.items[0].links.is_empty());
    }
}
