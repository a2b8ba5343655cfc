//! The little XML lab needs: escaping what it writes, and reading attributes of one element
//! out of what libvirt prints (`virsh dumpxml`, `net-dumpxml`, `capabilities`).
//!
//! lab writes a handful of fixed documents and reads a few attributes back, so this is done by
//! hand rather than with an XML library: the writer escapes every value, and the reader only
//! looks for elements lab itself wrote or that libvirt prints in a fixed form.

/// A value escaped for an attribute in single or double quotes, or for text.
///
/// ```
/// assert_eq!(libvirt::xml::escape("a<b & 'c'"), "a&lt;b &amp; &apos;c&apos;");
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The reverse of [`escape`] (and of the numeric references libvirt may write).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "apos" => Some('\''),
            "quot" => Some('"'),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The attributes of each start tag named `name` (`lab:host`, `bridge`), in document order.
///
/// ```
/// let doc = "<network><name>n</name><bridge name=\"lbr1\" stp='on'/></network>";
/// let b = libvirt::xml::elements(doc, "bridge");
/// assert_eq!(b[0], vec![("name".to_string(), "lbr1".to_string()), ("stp".into(), "on".into())]);
/// ```
pub fn elements(doc: &str, name: &str) -> Vec<Vec<(String, String)>> {
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        // `<bridge` must not match `<bridgefoo`.
        if !after.starts_with(|c: char| c.is_whitespace() || c == '/' || c == '>') {
            rest = after;
            continue;
        }
        let end = tag_end(after);
        out.push(attributes(&after[..end]));
        rest = &after[end..];
    }
    out
}

/// The index of the `>` that ends a start tag (quotes may hold `>`).
fn tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return i,
            _ => {}
        }
    }
    s.len()
}

fn attributes(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        let Some(eq) = s.find('=') else {
            break;
        };
        let key = s[..eq].trim().to_string();
        let v = s[eq + 1..].trim_start();
        let Some(q) = v.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            break;
        };
        let Some(close) = v[1..].find(q) else {
            break;
        };
        out.push((key, unescape(&v[1..1 + close])));
        s = &v[close + 2..];
    }
    out
}

/// One attribute's value from [`elements`]' output.
pub fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn escaped_values_read_back(v in "\\PC*") {
            let doc = format!("<x><lab:host a='{}' b=\"{}\"/></x>", escape(&v), escape(&v));
            let e = elements(&doc, "lab:host");
            prop_assert_eq!(e.len(), 1);
            prop_assert_eq!(attr(&e[0], "a"), Some(v.as_str()));
            prop_assert_eq!(attr(&e[0], "b"), Some(v.as_str()));
        }
    }

    #[test]
    fn a_longer_name_is_not_the_element() {
        let doc = "<bridges x='1'/><bridge name='b'/>";
        assert_eq!(
            elements(doc, "bridge"),
            vec![vec![("name".into(), "b".into())]]
        );
    }

    #[test]
    fn numeric_references() {
        assert_eq!(unescape("a&#39;b&#x27;c&bogus;"), "a'b'c&bogus;");
    }
}
