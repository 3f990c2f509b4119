//! Text from others (servers, providers, template authors) made safe to show on a terminal
//! or in a tool's output: every character that would act on the terminal instead of being
//! shown is escaped.

/// True for a character that changes how a terminal shows other text instead of showing
/// itself: controls (C0, DEL, C1: escape sequences, `\r`, newlines), Unicode's line and
/// paragraph separators, and the invisible format characters that reorder or hide text
/// (bidi embeddings, overrides and isolates, zero-width characters, the byte-order mark, tag
/// characters, variation selectors and the Hangul fillers that render blank).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// `text` with every [`is_unsafe`] character escaped (`\n`, `\u{1b}`, `\u{202e}`): strings
/// come from other people (template authors, providers, RPC servers), and a raw escape
/// sequence would drive the reader's terminal, a newline would forge a row and a bidi
/// override would reorder a cell.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match is_unsafe(c) {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    out
}
