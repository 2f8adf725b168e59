//! A small, safe XML reader for 1C's answers: honours the declared encoding, refuses any DOCTYPE
//! (so no entity can be declared, let alone expanded) and builds a bounded element tree.

use quick_xml::events::Event;
use quick_xml::Reader;

const MAX_DEPTH: usize = 64;

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum XmlError {
    #[error("document has a DOCTYPE; DTDs and entity declarations are refused")]
    DocType,
    #[error("unsupported or unknown encoding {0:?}")]
    UnknownEncoding(String),
    #[error("bytes are not valid {0}")]
    Undecodable(&'static str),
    #[error("reference to an undeclared entity")]
    UnknownEntity,
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("no root element")]
    NoRoot,
    #[error("content after the root element")]
    TrailingContent,
    #[error("XML syntax error")]
    Syntax(#[source] quick_xml::Error),
}

impl From<quick_xml::Error> for XmlError {
    fn from(e: quick_xml::Error) -> Self {
        XmlError::Syntax(e)
    }
}

impl From<quick_xml::encoding::EncodingError> for XmlError {
    fn from(e: quick_xml::encoding::EncodingError) -> Self {
        XmlError::Syntax(quick_xml::Error::Encoding(e))
    }
}

/// One element: local name (prefix dropped), attributes, children, concatenated text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child `name`, `None` when absent or blank.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes `bytes` as their BOM or XML declaration says (UTF-8 when neither does).
pub(crate) fn decode(bytes: &[u8]) -> Result<String, XmlError> {
    if let Some((encoding, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        return decode_with(encoding, &bytes[bom_len..]);
    }
    let encoding = match declared_encoding(bytes)? {
        Some(label) => encoding_rs::Encoding::for_label(label.trim().as_bytes())
            .ok_or(XmlError::UnknownEncoding(label))?,
        None => encoding_rs::UTF_8,
    };
    decode_with(encoding, bytes)
}

fn decode_with(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> Result<String, XmlError> {
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or(XmlError::Undecodable(encoding.name()))
}

fn declared_encoding(bytes: &[u8]) -> Result<Option<String>, XmlError> {
    if !bytes.starts_with(b"<?xml") {
        return Ok(None);
    }
    let mut reader = Reader::from_reader(bytes);
    let mut buf = Vec::new();
    match reader.read_event_into(&mut buf)? {
        Event::Decl(decl) => match decl.encoding() {
            Some(Ok(label)) => Ok(Some(String::from_utf8_lossy(&label).into_owned())),
            Some(Err(e)) => Err(XmlError::Syntax(e.into())),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Parses a whole document into its root element.
pub(crate) fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = decode(bytes)?;
    let mut reader = Reader::from_str(&text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        match reader.read_event()? {
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::TrailingContent);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(element(&start, reader.decoder())?);
            }
            Event::Empty(start) => {
                let done = element(&start, reader.decoder())?;
                attach(&mut stack, &mut root, done)?;
            }
            Event::End(_) => {
                if let Some(done) = stack.pop() {
                    attach(&mut stack, &mut root, done)?;
                }
            }
            Event::Text(t) => {
                let t = t.decode()?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&t),
                    None if t.trim().is_empty() => {}
                    None => return Err(XmlError::TrailingContent),
                }
            }
            Event::CData(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&t.decode()?);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()?
                        .map(String::from)
                        .ok_or(XmlError::UnknownEntity)?
                } else {
                    let name = r.decode()?;
                    quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or(XmlError::UnknownEntity)?
                        .to_owned()
                };
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&resolved);
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax(quick_xml::Error::Syntax(
            quick_xml::errors::SyntaxError::UnclosedTag,
        )));
    }
    root.ok_or(XmlError::NoRoot)
}

fn element(
    start: &quick_xml::events::BytesStart<'_>,
    decoder: quick_xml::encoding::Decoder,
) -> Result<Element, XmlError> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| XmlError::Syntax(e.into()))?;
        let key = attribute.key.local_name();
        let key = String::from_utf8_lossy(key.as_ref()).into_owned();
        if key == "xmlns" || attribute.key.as_ref().starts_with(b"xmlns:") {
            continue;
        }
        let value = attribute
            .decoded_and_normalized_value(quick_xml::XmlVersion::Implicit1_0, decoder)
            .map_err(|_| XmlError::UnknownEntity)?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        name,
        attributes,
        ..Element::default()
    })
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    done: Element,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(done),
        None if root.is_none() => *root = Some(done),
        None => return Err(XmlError::TrailingContent),
    }
    Ok(())
}

/// Characters XML 1.0 cannot carry at all, even escaped.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_attributes_and_predefined_entities_are_read() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
            <cml:Корень xmlns:cml="urn:1C.ru:commerceml_2" Атрибут="a &amp; b">
              <cml:Имя>Ромашка &lt;&quot;&apos;&gt; &#1046;</cml:Имя><Пусто/>
              <![CDATA[<сырое>]]>
            </cml:Корень>"#;
        let root = parse(doc.as_bytes()).unwrap();
        assert_eq!(root.name, "Корень");
        assert_eq!(root.attribute("Атрибут"), Some("a & b"));
        assert_eq!(root.child_text("Имя"), Some("Ромашка <\"'> Ж"));
        assert!(root.child("Пусто").is_some());
        assert_eq!(root.child_text("Пусто"), None);
        assert!(root.text.contains("<сырое>"));
    }

    #[test]
    fn the_declared_windows_1251_encoding_is_honoured() {
        let (bytes, _, _) = encoding_rs::WINDOWS_1251
            .encode("<?xml version=\"1.0\" encoding=\"windows-1251\"?><a>Иванов</a>");
        let root = parse(&bytes).unwrap();
        assert_eq!(root.text, "Иванов");
    }

    #[test]
    fn a_doctype_is_refused_before_any_entity_is_expanded() {
        let billion_laughs = r#"<?xml version="1.0"?>
            <!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
            <a>&lol2;</a>"#;
        assert!(matches!(
            parse(billion_laughs.as_bytes()),
            Err(XmlError::DocType)
        ));
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>"#;
        assert!(matches!(parse(xxe.as_bytes()), Err(XmlError::DocType)));
    }

    #[test]
    fn an_undeclared_entity_is_an_error_not_an_expansion() {
        assert!(matches!(
            parse(b"<a>&unknown;</a>"),
            Err(XmlError::UnknownEntity)
        ));
    }

    #[test]
    fn malformed_documents_are_errors() {
        for doc in [
            &b"<a><b></a>"[..],
            b"<a>",
            b"",
            b"not xml",
            b"<a/><b/>",
            b"<?xml version=\"1.0\" encoding=\"klingon\"?><a/>",
        ] {
            assert!(parse(doc).is_err(), "{}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(parse(deep.as_bytes()), Err(XmlError::TooDeep)));
    }

    #[test]
    fn control_characters_are_not_xml_characters() {
        assert!(is_xml_char('Ж') && is_xml_char('\n') && is_xml_char('&'));
        assert!(!is_xml_char('\u{1}') && !is_xml_char('\u{FFFE}'));
    }
}
