//! The JSON examples of docs/PROTOCOL.md, for the golden tests of the control crate and of
//! signaling (included by path: one reader of the doc for both).

use serde_json::Value;

/// The protocol document, as compiled in.
const PROTOCOL_MD: &str = include_str!("../../../docs/PROTOCOL.md");

/// The JSON values of every ```json block between the heading `from` and the heading
/// `to` (or the end of the document).
pub(crate) fn json_examples(from: &str, to: Option<&str>) -> Vec<Value> {
    let start = PROTOCOL_MD
        .find(from)
        .unwrap_or_else(|| panic!("PROTOCOL.md has no {from:?}"));
    let end = to.map_or(PROTOCOL_MD.len(), |to| {
        PROTOCOL_MD
            .find(to)
            .unwrap_or_else(|| panic!("PROTOCOL.md has no {to:?}"))
    });
    let mut values = Vec::new();
    let mut rest = &PROTOCOL_MD[start..end];
    while let Some(open) = rest.find("```json\n") {
        let body = &rest[open + 8..];
        let close = body.find("```").expect("unterminated json block");
        let block = &body[..close];
        for v in serde_json::Deserializer::from_str(block).into_iter::<Value>() {
            values.push(v.unwrap_or_else(|e| panic!("bad JSON in PROTOCOL.md: {e}\n{block}")));
        }
        rest = &body[close + 3..];
    }
    values
}
