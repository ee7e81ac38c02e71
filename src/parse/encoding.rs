//! Page bytes -> text, choosing the encoding the way a browser or feed reader does, and
//! refusing bytes that are no text at all.
//!
//! The order (the WHATWG encoding sniffing order, with the XML rules feed readers add):
//!
//! 1. a byte order mark (UTF-8, UTF-16LE, UTF-16BE);
//! 2. the `charset` of the HTTP `Content-Type` (a server's word beats the document's);
//! 3. for XML, UTF-16 without a BOM, told by how `<?` is spelled in the first bytes (XML
//!    1.0 appendix F), then the declaration's `encoding="…"`;
//! 4. for HTML, `<meta charset>` or `<meta http-equiv="Content-Type" content="…charset=…">`
//!    in the first 1024 bytes, as browsers prescan;
//! 5. UTF-8 when the bytes are valid UTF-8, or are UTF-8 with a few damaged bytes (a
//!    capture with one broken character stays UTF-8, with one U+FFFD);
//! 6. else windows-1252, which is what browsers and feedparser fall back to for
//!    undeclared legacy pages (and which decodes ISO-8859-1 text the same).
//!
//! A label that names no encoding `encoding_rs` knows (a misspelling, UTF-32) is passed
//! over for the next step. Decoding itself is `encoding_rs`, the WHATWG encodings that
//! Firefox uses; nothing here decodes a byte by hand.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

/// Which step chose a page's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingSource {
    /// A byte order mark.
    Bom,
    /// The HTTP `Content-Type` charset.
    Http,
    /// UTF-16 told by the first bytes of an XML document without a BOM.
    XmlUtf16Pattern,
    /// The XML declaration's `encoding`.
    XmlDeclaration,
    /// An HTML `<meta charset>` or `http-equiv` declaration.
    HtmlMeta,
    /// Nothing declared; the bytes are (nearly all) valid UTF-8.
    Utf8,
    /// Nothing declared and not UTF-8: the windows-1252 fallback.
    Fallback,
}

impl EncodingSource {
    /// Whether the page (or its server) named its encoding, so that a replacement
    /// character in the text means the declaration was wrong, not that we guessed.
    pub fn is_declared(self) -> bool {
        !matches!(self, EncodingSource::Utf8 | EncodingSource::Fallback)
    }
}

/// A page's text and how its encoding was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text, BOM removed, CRLF and lone CR turned into LF.
    pub text: String,
    /// The encoding the bytes were decoded with; for a page declared UTF-8 whose bytes
    /// are not, the declared one (the text is then read as windows-1252).
    pub encoding: &'static Encoding,
    /// Which step chose it.
    pub source: EncodingSource,
    /// Whether some bytes did not fit the encoding and became U+FFFD.
    pub had_errors: bool,
}

/// Decodes page bytes with the encoding chosen as described in the module docs.
/// `content_type` is the HTTP `Content-Type` of a fetched page, if any.
pub fn decode_page(bytes: &[u8], content_type: Option<&str>) -> Decoded {
    let (encoding, source, body) = choose(bytes, content_type);
    let (mut text, had_errors) = encoding.decode_without_bom_handling(body);
    // Declared UTF-8 but not UTF-8 at all (a feed re-encoded to Latin-1 and left with
    // its old declaration, common in the wild): read as windows-1252, as browsers and
    // feedparser fall back, rather than as replacement characters. `had_errors` stays
    // set, so the page is still reported as mislabelled.
    if had_errors && encoding == UTF_8 && source.is_declared() && !is_mostly_utf8(body) {
        text = WINDOWS_1252.decode_without_bom_handling(body).0;
    }
    Decoded {
        text: normalize_newlines(text),
        encoding,
        source,
        had_errors,
    }
}

/// The encoding, the step that chose it, and the bytes to decode (without a BOM).
fn choose<'b>(
    bytes: &'b [u8],
    content_type: Option<&str>,
) -> (&'static Encoding, EncodingSource, &'b [u8]) {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        return (encoding, EncodingSource::Bom, &bytes[bom_len..]);
    }
    if let Some(encoding) = content_type.and_then(charset_param) {
        return (encoding, EncodingSource::Http, bytes);
    }
    // XML appendix F: "<?" as UTF-16 without a BOM.
    if bytes.starts_with(b"<\0?\0") {
        return (UTF_16LE, EncodingSource::XmlUtf16Pattern, bytes);
    }
    if bytes.starts_with(b"\0<\0?") {
        return (UTF_16BE, EncodingSource::XmlUtf16Pattern, bytes);
    }
    if let Some(encoding) = xml_declared(bytes) {
        return (encoding, EncodingSource::XmlDeclaration, bytes);
    }
    if let Some(encoding) = html_declared(bytes) {
        return (encoding, EncodingSource::HtmlMeta, bytes);
    }
    if is_mostly_utf8(bytes) {
        (UTF_8, EncodingSource::Utf8, bytes)
    } else {
        (WINDOWS_1252, EncodingSource::Fallback, bytes)
    }
}

/// The encoding a `Content-Type` value's `charset` parameter names.
fn charset_param(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| label_encoding(value.trim().trim_matches(['"', '\''])))
            .flatten()
    })
}

/// The encoding a label names, with the one correction browsers make: a document that
/// is read as ASCII-compatible bytes cannot be UTF-16, so a UTF-16 label there (seen
/// in the wild on pages re-encoded by a server) means UTF-8.
fn label_encoding(label: &str) -> Option<&'static Encoding> {
    let encoding = Encoding::for_label_no_replacement(label.trim().as_bytes())?;
    Some(if encoding == UTF_16LE || encoding == UTF_16BE {
        UTF_8
    } else {
        encoding
    })
}

/// The `encoding` of an XML declaration at the start of the bytes (after whitespace).
fn xml_declared(bytes: &[u8]) -> Option<&'static Encoding> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = bytes.get(start..)?;
    if !rest.starts_with(b"<?xml") {
        return None;
    }
    let decl = &rest[..rest
        .iter()
        .position(|&b| b == b'>')
        .unwrap_or(rest.len().min(512))];
    let value = attribute_value(decl, b"encoding")?;
    label_encoding(std::str::from_utf8(value).ok()?)
}

/// The charset an HTML `<meta>` declares in the first 1024 bytes, as browsers prescan.
fn html_declared(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(1024)];
    let lower = head.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = find(&lower[from..], b"<meta") {
        let tag_start = from + i;
        let tag_end = lower[tag_start..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(lower.len(), |e| tag_start + e);
        let tag = &lower[tag_start..tag_end];
        let charset = attribute_value(tag, b"charset").or_else(|| {
            // http-equiv's content: "text/html; charset=koi8-r".
            let content = attribute_value(tag, b"content")?;
            let at = find(content, b"charset=")? + b"charset=".len();
            let value = &content[at..];
            let end = value
                .iter()
                .position(|&b| b == b';' || b == b'"' || b == b'\'' || b.is_ascii_whitespace())
                .unwrap_or(value.len());
            Some(&value[..end])
        });
        if let Some(encoding) = charset
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(label_encoding)
        {
            return Some(encoding);
        }
        from = tag_end;
    }
    None
}

/// The quoted value of `name="…"` (or `'…'`) inside a tag's bytes.
fn attribute_value<'t>(tag: &'t [u8], name: &[u8]) -> Option<&'t [u8]> {
    let mut from = 0;
    while let Some(i) = find(&tag[from..], name) {
        let at = from + i;
        from = at + name.len();
        // A whole attribute name: preceded by whitespace.
        if at == 0 || !tag[at - 1].is_ascii_whitespace() {
            continue;
        }
        let rest = &tag[from..];
        let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
        let Some(rest) = rest.strip_prefix(b"=") else {
            continue;
        };
        let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
        let quote = *rest.first()?;
        if quote == b'"' || quote == b'\'' {
            let end = rest[1..].iter().position(|&b| b == quote)?;
            return Some(&rest[1..1 + end]);
        }
        let end = rest
            .iter()
            .position(|&b| {
                b.is_ascii_whitespace() || matches!(b, b'>' | b'/' | b'?' | b'"' | b'\'' | b';')
            })
            .unwrap_or(rest.len());
        return Some(&rest[..end]);
    }
    None
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Valid UTF-8, or UTF-8 with rare damage: at least one valid multi-byte sequence and
/// at most one invalid byte for every 4 of them. Legacy single-byte text (Latin-1,
/// windows-1252) almost never forms a valid multi-byte sequence, so it goes to the
/// fallback instead of turning every accented letter into U+FFFD.
fn is_mostly_utf8(bytes: &[u8]) -> bool {
    let mut valid_multibyte = 0usize;
    let mut invalid = 0usize;
    for chunk in bytes.utf8_chunks() {
        valid_multibyte += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        if !chunk.invalid().is_empty() {
            invalid += 1;
        }
    }
    invalid == 0 || (valid_multibyte > 0 && invalid * 4 <= valid_multibyte)
}

/// CRLF and lone CR to LF, as every parser expects lines.
fn normalize_newlines(text: Cow<'_, str>) -> String {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.into_owned()
    }
}

/// Why bytes are no listing at all, or `None` when they may be one: a binary format's
/// magic number, NUL bytes, or control characters that no text page contains. Checked
/// before any format looks at the page, whatever the source's format, so a stray PDF
/// or archive in a drop folder is refused (and moved to `failed/`) instead of read.
pub fn binary_reason(bytes: &[u8], decoded: &Decoded) -> Option<String> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x1f\x8b", "gzip"),
        (b"%PDF-", "PDF"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"PK\x03\x04", "ZIP"),
        (b"PK\x05\x06", "ZIP"),
        (b"\xff\xd8\xff", "JPEG"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"BZh", "bzip2"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"7z\xbc\xaf\x27\x1c", "7-Zip"),
        (b"\x7fELF", "ELF executable"),
        (b"RIFF", "RIFF (WebP, WAV, AVI)"),
        (b"\x00\x00\x01\x00", "icon"),
        (b"SQLite format 3\x00", "SQLite database"),
    ];
    if let Some((_, name)) = MAGIC.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Some(format!("binary data: a {name} file"));
    }
    // Judge the decoded text, so UTF-16 (whose ASCII bytes pair with NULs) is text.
    let sample: Vec<char> = decoded.text.chars().take(64 * 1024).collect();
    if sample.contains(&'\0') {
        return Some("binary data: NUL bytes".to_owned());
    }
    let control = sample
        .iter()
        .filter(|&&c| (c.is_control() && !matches!(c, '\t' | '\n' | '\x0c')) || c == '\u{fffd}')
        .count();
    // Text has none of these; a page or two of damage is tolerated.
    if control > 8 && control * 100 > sample.len() {
        return Some(format!(
            "binary data: {control} control or undecodable characters in the first {} characters",
            sample.len()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(bytes: &[u8], ct: Option<&str>) -> (&'static str, EncodingSource) {
        let d = decode_page(bytes, ct);
        (d.encoding.name(), d.source)
    }

    #[test]
    fn bom_beats_everything() {
        let mut b = b"\xff\xfe".to_vec();
        b.extend(
            "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?><a>\u{e9}</a>"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        let d = decode_page(&b, Some("text/xml; charset=koi8-r"));
        assert_eq!(d.source, EncodingSource::Bom);
        assert!(d.text.contains("<a>\u{e9}</a>"));
    }

    #[test]
    fn http_charset_beats_the_document() {
        let b = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><a>\xe9</a>";
        assert_eq!(
            enc(b, Some("application/xml; charset=\"ISO-8859-1\"")),
            ("windows-1252", EncodingSource::Http)
        );
    }

    #[test]
    fn xml_declaration_and_html_meta_are_read() {
        let b = b"\n  <?xml version='1.0' encoding='windows-1251'?><rss/>";
        assert_eq!(
            enc(b, None),
            ("windows-1251", EncodingSource::XmlDeclaration)
        );
        let b = b"<!doctype html><html><head><meta charset=\"gb2312\"></head>";
        assert_eq!(enc(b, None), ("GBK", EncodingSource::HtmlMeta));
        let b =
            b"<html><head><META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=koi8-r\">";
        assert_eq!(enc(b, None), ("KOI8-R", EncodingSource::HtmlMeta));
        // An unknown label is passed over.
        let b = b"<?xml version=\"1.0\" encoding=\"bogus\"?><a>\xc3\xa9</a>";
        assert_eq!(enc(b, None), ("UTF-8", EncodingSource::Utf8));
    }

    #[test]
    fn utf16_without_bom_is_told_by_its_first_bytes() {
        let b: Vec<u8> = "<?xml version=\"1.0\"?><a>x</a>"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        let d = decode_page(&b, None);
        assert_eq!(d.encoding, UTF_16BE);
        assert_eq!(d.text, "<?xml version=\"1.0\"?><a>x</a>");
    }

    #[test]
    fn undeclared_latin1_falls_back_and_damaged_utf8_stays_utf8() {
        let d = decode_page(b"M\xe3e e filhos", None);
        assert_eq!(
            (d.text.as_str(), d.source),
            ("M\u{e3}e e filhos", EncodingSource::Fallback)
        );
        let d = decode_page(
            "Caf\u{e9} \u{2014} cr\u{e8}me \u{e0} la \u{2014} fin\u{e9}".as_bytes(),
            None,
        );
        assert_eq!(d.source, EncodingSource::Utf8);
        let mut b = "Caf\u{e9} na\u{ef}ve \u{2014} \u{e9}t\u{e9}"
            .as_bytes()
            .to_vec();
        b.push(0xff);
        let d = decode_page(&b, None);
        assert_eq!(d.source, EncodingSource::Utf8);
        assert!(d.had_errors);
    }

    #[test]
    fn binary_is_told_apart_from_text() {
        let text = b"Plain text\nwith lines\n";
        assert_eq!(binary_reason(text, &decode_page(text, None)), None);
        let gz = b"\x1f\x8b\x08\x00rest";
        assert!(binary_reason(gz, &decode_page(gz, None))
            .unwrap()
            .contains("gzip"));
        let nul = b"abc\0def";
        assert!(binary_reason(nul, &decode_page(nul, None))
            .unwrap()
            .contains("NUL"));
        let utf16: Vec<u8> = "\u{feff}<rss/>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(binary_reason(&utf16, &decode_page(&utf16, None)), None);
    }
}

#[cfg(test)]
mod mislabelled {
    use super::*;

    #[test]
    fn latin1_declared_as_utf8_reads_as_windows_1252_and_is_reported() {
        let page = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss><channel><title>M\xe3e e A\xe7\xe3o</title></channel></rss>";
        let d = decode_page(page, None);
        assert!(d.text.contains("Mãe e Ação"), "{}", d.text);
        assert!(d.had_errors, "still reported as mislabelled");
        assert!(binary_reason(page, &d).is_none());
        // A UTF-8 page with one stray byte stays UTF-8, with one replacement.
        let stray = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><t>Mãe e Ação \u{2014} ok</t>";
        let mut bytes = stray.as_bytes().to_vec();
        bytes.push(0xff);
        let d = decode_page(&bytes, None);
        assert!(d.text.contains("Mãe e Ação"));
    }
}
