//! Errors in a Lab.toml, each tied to a byte span of the source.

use std::fmt::Write as _;
use std::ops::Range;

/// One problem in a Lab.toml, pointing at the text that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte range in the source.
    pub span: Range<usize>,
    /// What is wrong, in one sentence.
    pub message: String,
    /// A short label for the marked text.
    pub label: String,
    /// How to fix it, when there is something to say.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            label: "here".into(),
            help: None,
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A Lab.toml that did not parse or validate, with everything needed to show where.
#[derive(Debug, Clone)]
pub struct InvalidLab {
    /// The file name as given (or `<preset NAME>`).
    pub path: String,
    /// The whole source text.
    pub source_text: String,
    /// At least one diagnostic, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl InvalidLab {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.source_text, offset)
    }

    /// A compiler-style rendering: `error: ...`, ` --> file:line:col`, the line, and a caret
    /// under the span. The CLI renders the same data with miette; this is for embedders and logs.
    pub fn render_plain(&self) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            let (line, col) = self.line_col(d.span.start);
            let text = self.source_text.lines().nth(line - 1).unwrap_or("");
            let width = self.source_text[d.span.clone()]
                .lines()
                .next()
                .map_or(1, |s| s.chars().count().max(1));
            let gutter = line.to_string().len();
            let _ = writeln!(out, "error: {}", d.message);
            let _ = writeln!(out, "{:gutter$}--> {}:{line}:{col}", "", self.path);
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{line} | {text}");
            let _ = writeln!(
                out,
                "{:gutter$} | {}{} {}",
                "",
                " ".repeat(col - 1),
                "^".repeat(width),
                d.label
            );
            if let Some(help) = &d.help {
                let _ = writeln!(out, "{:gutter$} = help: {help}", "");
            }
        }
        out
    }
}

/// 1-based line and column (in characters) of a byte offset in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(src, offset.min(src.len()));
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // "é" is two bytes; the column counts characters.
        assert_eq!(line_col(src, 9), (2, 3));
        assert_eq!(line_col(src, 1000), (3, 1));
    }
}
