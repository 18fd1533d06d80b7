//! A config file as bytes: split into lines, each line's text before its comment decoded,
//! and applied. The file need not be UTF-8 as a whole: only text outside comments must be
//! printable ASCII, so any byte inside a comment is accepted (a Latin-1 `é` in a note), and
//! a byte that is not UTF-8 outside one is reported as `file:line:column` like every other
//! error.

use crate::error::{Error, LineError};
use crate::lang::MAX_LINE;
use crate::model::{Model, MAX_ERRORS};

/// Build a model from a whole file's bytes. On failure returns every error (up to
/// [`MAX_ERRORS`]), with the file, line and column of each.
pub fn load_bytes(bytes: &[u8], file: &str) -> Result<Model, Vec<Error>> {
    let mut model = Model::default();
    let mut errors = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let r = code_text(line).and_then(|text| model.apply_line(text));
        if let Err(e) = r {
            errors.push(e.at(file, i + 1));
            if errors.len() >= MAX_ERRORS {
                break;
            }
        }
    }
    if errors.is_empty() {
        Ok(model)
    } else {
        Err(errors)
    }
}

/// The part of a line before its comment, as text; a byte that is not UTF-8 there is an
/// error at its column. (Over-long lines are refused by the tokenizer, so the length check
/// is kept for them.)
pub fn code_text(line: &[u8]) -> Result<&str, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::new(
            1,
            format!("a line of at most {MAX_LINE} bytes"),
            format!("{} bytes", line.len()),
        ));
    }
    let code = &line[..comment_start(line)];
    std::str::from_utf8(code).map_err(|e| {
        let ok = e.valid_up_to();
        // The prefix up to `ok` is valid UTF-8 by definition.
        let col = std::str::from_utf8(&code[..ok]).map_or(ok, |s| s.chars().count()) + 1;
        LineError::new(
            col,
            "printable ASCII",
            format!("byte 0x{:02x} (not UTF-8)", code[ok]),
        )
    })
}

/// Where a line's comment starts: a token beginning with `#` or `!` (as the tokenizer
/// decides); the line's length when it has none.
fn comment_start(line: &[u8]) -> usize {
    let mut at_token_start = true;
    for (i, &b) in line.iter().enumerate() {
        let sep = matches!(b, b' ' | b'\t' | b'\r');
        if at_token_start && (b == b'#' || b == b'!') {
            return i;
        }
        at_token_start = sep;
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_in_a_comment_is_accepted() {
        let m = load_bytes(
            b"real 10.0.0.1 # caf\xe9\nweight 10.0.0.1 3 ! \xff\xfe\n",
            "t",
        )
        .unwrap();
        assert_eq!(m.reals[0].weight, 3);
        let m = load_bytes(b"# \xe9t\xe9\n\xe9 is fine after a bang? no\n", "t");
        let e = m.unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "t:2:1: expected printable ASCII, found byte 0xe9 (not UTF-8)"
        );
    }

    #[test]
    fn a_bad_byte_outside_comments_has_line_and_column() {
        let e = load_bytes(b"real 10.0.0.1\nreal 10.0.0.\xe92\n", "f.conf").unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_string(),
            "f.conf:2:13: expected printable ASCII, found byte 0xe9 (not UTF-8)"
        );
        // Valid UTF-8 that is not ASCII is refused by the tokenizer, with its column.
        let e = load_bytes("real 10.0.0.1\nreal é\n".as_bytes(), "f").unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "f:2:6: expected printable ASCII, found `é`"
        );
        // A `#` inside a token does not start a comment.
        let e = load_bytes(b"url a#\xe9 http://x/\n", "f").unwrap_err();
        assert_eq!(e[0].line, 1);
        assert_eq!(e[0].col, 7);
    }

    #[test]
    fn same_model_as_text_loading() {
        for f in ["acme.conf", "load-share.conf", "lab.conf"] {
            let path = format!("{}/../../configs/{f}", env!("CARGO_MANIFEST_DIR"));
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert_eq!(
                load_bytes(&bytes, f).unwrap(),
                crate::load(&text, f).unwrap(),
                "{f}"
            );
        }
    }
}
