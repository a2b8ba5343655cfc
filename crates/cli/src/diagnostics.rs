//! Lab.toml errors shown with miette: file:line:col, the source line and a caret under the span.

use lab::InvalidLab;
use std::io::IsTerminal as _;

use miette::{
    GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan, ThemeCharacters, ThemeStyles,
};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
struct LabDiagnostic {
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("{label}")]
    span: SourceSpan,
    label: String,
    #[help]
    help: Option<String>,
}

/// Print every diagnostic of `invalid` to stderr.
pub fn print(invalid: &InvalidLab) {
    // The ASCII theme draws `^` under the span, which reads the same in a terminal, a CI log
    // and a bug report.
    // Colour only on a terminal, and never with NO_COLOR set.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let theme = GraphicalTheme {
        characters: ThemeCharacters::ascii(),
        styles: if colour {
            ThemeStyles::ansi()
        } else {
            ThemeStyles::none()
        },
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    for d in &invalid.diagnostics {
        let len = d.span.end.saturating_sub(d.span.start).max(1);
        let start = d.span.start.min(invalid.source_text.len());
        let diag = LabDiagnostic {
            message: d.message.clone(),
            src: NamedSource::new(&invalid.path, invalid.source_text.clone()),
            span: (
                start,
                len.min(invalid.source_text.len().saturating_sub(start)),
            )
                .into(),
            label: d.label.clone(),
            help: d.help.clone(),
        };
        let _ = handler.render_report(&mut out, &diag);
        out.push('\n');
    }
    let n = invalid.diagnostics.len();
    out.push_str(&format!(
        "{}: {n} problem{} in the lab description\n",
        invalid.path,
        if n == 1 { "" } else { "s" }
    ));
    eprint!("{out}");
}
