//! Renders engine errors for people: the message, the offending line of the file with a marker
//! at the column, and a hint; plain ASCII when stderr is not a terminal, so CI logs stay clean.

use std::io::IsTerminal;

use hl_engine::{Class, Error};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

/// Prints an error to stderr.
pub fn report(err: &Error) {
    let mut diag = MietteDiagnostic::new(err.to_string());
    if let Some(help) = err.help() {
        diag = diag.with_help(help);
    }
    let tty = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let handler = GraphicalReportHandler::new_themed(if tty {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    })
    .with_context_lines(1);
    let mut out = String::new();
    let source = err.origin().filter(|_| err.quotable()).and_then(|o| {
        let root = crate::session::last_root()?;
        let text = std::fs::read_to_string(root.join(o.path.as_str())).ok()?;
        let offset = offset_of(&text, o.line, o.col)?;
        Some((o.path.to_string(), text, offset))
    });
    let rendered = match source {
        Some((name, text, offset)) => {
            let len = text[offset..].find(['\n', ' ', ':']).unwrap_or(0).max(1);
            diag = diag.with_labels([LabeledSpan::at(offset..offset + len, "here")]);
            let report = miette::Report::new(diag).with_source_code(NamedSource::new(name, text));
            handler.render_report(&mut out, report.as_ref())
        }
        None => handler.render_report(&mut out, &diag),
    };
    if rendered.is_err() || out.is_empty() {
        out = format!("error: {err}\n");
    }
    if let (false, Some(o)) = (err.quotable(), err.origin()) {
        let secret = match err {
            Error::OnSide { source, .. } => !source.quotable(),
            _ => true,
        };
        if secret {
            out.push_str(&format!(
                "  at {o} (the line is not shown: it holds a secret)\n"
            ));
        } else {
            out.push_str(&format!("  at {o}\n"));
        }
    }
    eprint!("{out}");
    if err.class() == Class::Internal {
        eprintln!("this is a bug in hl; please report it with the command you ran");
    }
}

fn offset_of(text: &str, line: u32, col: u32) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as u32 + 1 == line {
            let c = (col.max(1) - 1) as usize;
            return Some(offset + c.min(l.trim_end_matches('\n').len()));
        }
        offset += l.len();
    }
    None
}
