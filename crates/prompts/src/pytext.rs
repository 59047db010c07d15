//! Python's text primitives, so ported behaviour matches the reference exactly.
//!
//! The reference splits with `str.splitlines()` and trims with `str.strip()`; both
//! know more separators than Rust's `lines()` and `trim()` (form feed, vertical tab,
//! the information separators, NEL, LS, PS). Tests compare against fixtures recorded
//! from the reference, so the small differences would show.

/// Characters `str.strip()` removes: Unicode whitespace plus U+001C..U+001F, which
/// Python counts as whitespace and Rust does not.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()`.
pub(crate) fn py_strip(text: &str) -> &str {
    text.trim_matches(is_py_space)
}

/// `str.splitlines()` without keepends: splits on `\n`, `\r\n`, `\r`, `\v`, `\f`,
/// U+001C..U+001E, NEL, LS and PS; a trailing separator adds no empty line.
pub(crate) fn py_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        lines.push(&text[start..index]);
        let mut end = index + c.len_utf8();
        if c == '\r' {
            if let Some(&(next_index, '\n')) = chars.peek() {
                chars.next();
                end = next_index + 1;
            }
        }
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The reference's `_title_from_prompt`: the first line of the stripped prompt, cut
/// to `max_chars` characters with a trailing `…`; `Task` for an empty prompt.
pub(crate) fn title_from_prompt(prompt: &str, max_chars: usize) -> String {
    let stripped = py_strip(prompt);
    let line = py_splitlines(stripped).first().copied().unwrap_or("");
    if line.chars().count() > max_chars {
        let mut cut: String = line.chars().take(max_chars.saturating_sub(1)).collect();
        cut.push('…');
        return cut;
    }
    if line.is_empty() { "Task".to_owned() } else { line.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(py_splitlines("a\nb\r\nc\rd\u{b}e\u{2028}f\n"), ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(py_splitlines(""), Vec::<&str>::new());
        assert_eq!(py_splitlines("\n\n"), ["", ""]);
        assert_eq!(py_splitlines("x\r"), ["x"]);
    }

    #[test]
    fn strip_removes_python_whitespace() {
        assert_eq!(py_strip("\u{1f} a \u{c}\n"), "a");
        assert_eq!(py_strip("   "), "");
    }

    #[test]
    fn titles_are_cut_with_an_ellipsis() {
        assert_eq!(title_from_prompt("  Fix the bug\nmore", 60), "Fix the bug");
        assert_eq!(title_from_prompt("", 60), "Task");
        let long = "x".repeat(61);
        let title = title_from_prompt(&long, 60);
        assert_eq!(title.chars().count(), 60);
        assert!(title.ends_with('…'));
        assert_eq!(title_from_prompt(&"y".repeat(60), 60), "y".repeat(60));
    }
}
