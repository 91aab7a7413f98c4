//! keepalived.conf's syntax: words, quoted strings, `!`/`#` comments, `{ }` blocks (on
//! their own lines or inline), and `include PATTERN` (a glob in the file name, relative
//! to the including file's directory), into a tree of statements that remember their
//! file and line.
use std::path::{Path, PathBuf};

/// Where a statement is: "FILE:LINE".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One statement: `key args...` and, if it opens one, its block.
#[derive(Debug, Clone)]
pub struct Node {
    pub key: String,
    pub args: Vec<String>,
    pub at: Loc,
    pub block: Option<Vec<Node>>,
}

impl Node {
    /// The statement as written (key and arguments), for messages.
    pub fn text(&self) -> String {
        std::iter::once(self.key.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
    /// The end of a line: it ends a statement.
    End,
}

/// Largest file read (keepalived.conf of a big site is some hundred KiB).
const MAX_BYTES: u64 = 16 << 20;
/// `include` nesting deeper than this is a loop.
const MAX_DEPTH: usize = 8;

/// Reads `path` (and what it includes) into statements; an error names file and line.
pub fn read(path: &Path) -> Result<Vec<Node>, String> {
    let mut toks = Vec::new();
    lex_file(path, 0, &mut toks)?;
    let mut i = 0;
    block(&toks, &mut i, None)
}

fn lex_file(path: &Path, depth: usize, out: &mut Vec<(Tok, Loc)>) -> Result<(), String> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    if meta.len() > MAX_BYTES {
        return Err(format!("{name}: {} bytes is too big for a keepalived.conf", meta.len()));
    }
    let text = std::fs::read(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let text = String::from_utf8(text).map_err(|_| format!("{name}: not UTF-8 text"))?;
    for (n, line) in text.lines().enumerate() {
        let at = Loc { file: name.clone(), line: n + 1 };
        let words = lex_line(line).map_err(|e| format!("{at}: {e}"))?;
        match words.first() {
            Some(Tok::Word(w)) if w == "include" => {
                let Some(Tok::Word(pattern)) = words.get(1) else {
                    return Err(format!("{at}: include needs a file name"));
                };
                if depth >= MAX_DEPTH {
                    return Err(format!("{at}: includes nested deeper than {MAX_DEPTH} (a loop?)"));
                }
                let dir = path.parent().unwrap_or(Path::new("."));
                let files = glob(dir, pattern).map_err(|e| format!("{at}: {e}"))?;
                for f in files {
                    lex_file(&f, depth + 1, out)?;
                }
            }
            Some(Tok::Word(w)) if w.starts_with('@') || w.starts_with('$') || w == "~SEQ" => {
                return Err(format!(
                    "{at}: {w}: keepalived's conditional configuration, parameters and sequences \
                     are not read by the import; expand them first (keepalived -t --config-test \
                     shows the effective configuration)"
                ));
            }
            _ => {}
        }
        if !matches!(words.first(), Some(Tok::Word(w)) if w == "include") {
            out.extend(words.into_iter().map(|t| (t, at.clone())));
        }
        out.push((Tok::End, at));
    }
    Ok(())
}

/// Splits one line: quoted strings are one word, `{` and `}` are tokens of their own,
/// `!` or `#` at the start of a word comments out the rest of the line.
fn lex_line(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Tok>| {
        if !word.is_empty() {
            out.push(Tok::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => s.extend(chars.next()),
                        Some(c) => s.push(c),
                        None => return Err("a quoted string is not closed".into()),
                    }
                }
                word.push_str(&s);
            }
            '!' | '#' if word.is_empty() => break,
            '{' => {
                flush(&mut word, &mut out);
                out.push(Tok::Open);
            }
            '}' => {
                flush(&mut word, &mut out);
                out.push(Tok::Close);
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    Ok(out)
}

/// Statements up to the `}` that closes `open` (or to the end at the top level).
fn block(toks: &[(Tok, Loc)], i: &mut usize, open: Option<&Loc>) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    loop {
        let Some((tok, at)) = toks.get(*i) else {
            return match open {
                Some(o) => Err(format!("{o}: this block is not closed (a `}}` is missing)")),
                None => Ok(nodes),
            };
        };
        *i += 1;
        match tok {
            Tok::End => {}
            Tok::Close => match open {
                Some(_) => return Ok(nodes),
                None => return Err(format!("{at}: `}}` closes no block")),
            },
            Tok::Open => return Err(format!("{at}: `{{` without a keyword before it")),
            Tok::Word(key) => {
                let mut args = Vec::new();
                let mut sub = None;
                while let Some((t, _)) = toks.get(*i) {
                    match t {
                        Tok::Word(w) => args.push(w.clone()),
                        Tok::Open => {
                            *i += 1;
                            sub = Some(block(toks, i, Some(at))?);
                            break;
                        }
                        Tok::Close | Tok::End => break,
                    }
                    *i += 1;
                }
                nodes.push(Node { key: key.clone(), args, at: at.clone(), block: sub });
            }
        }
    }
}

/// The files `pattern` names: a path whose last part may hold `*` and `?`; sorted, as
/// keepalived's glob(3) returns them. A pattern without wildcards must exist.
fn glob(dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full =
        if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { dir.join(pattern) };
    let name = full.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.contains(['*', '?']) {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(format!("include {pattern}: no such file"))
        };
    }
    let parent = full.parent().unwrap_or(Path::new("."));
    if parent.to_string_lossy().contains(['*', '?']) {
        return Err(format!("include {pattern}: wildcards only in the file name"));
    }
    let entries = std::fs::read_dir(parent)
        .map_err(|e| format!("include {pattern}: {}: {e}", parent.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.file_name().is_some_and(|n| matches(name.as_bytes(), n.as_encoded_bytes())))
        .collect();
    files.sort();
    Ok(files)
}

/// Shell wildcard match: `*` any run, `?` one character; a leading dot needs a dot.
fn matches(pat: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pat.first() != Some(&b'.') {
        return false;
    }
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pat, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Node>, String> {
        let mut toks = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = Loc { file: "t".into(), line: n + 1 };
            toks.extend(lex_line(line)?.into_iter().map(|t| (t, at.clone())));
            toks.push((Tok::End, at));
        }
        block(&toks, &mut 0, None)
    }

    #[test]
    fn blocks_inline_and_on_their_own_lines() {
        let t = parse(
            "! comment\nvirtual_server 10.0.0.1 80 {\n  lb_algo rr # why\n  real_server 10.0.0.2 80 { weight 2 }\n  HTTP_GET {\n    url { path /a\n status_code 200-299 }\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        let vs = &t[0];
        assert_eq!(
            (vs.key.as_str(), vs.args.clone(), vs.at.line),
            ("virtual_server", vec!["10.0.0.1".into(), "80".into()], 2)
        );
        let keys: Vec<_> = vs.children().iter().map(|n| n.text()).collect();
        assert_eq!(keys, ["lb_algo rr", "real_server 10.0.0.2 80", "HTTP_GET"]);
        assert_eq!(vs.children()[1].children()[0].text(), "weight 2");
        let url = &vs.children()[2].children()[0];
        assert_eq!(
            url.children().iter().map(|n| n.text()).collect::<Vec<_>>(),
            ["path /a", "status_code 200-299"]
        );
        assert_eq!(url.children()[1].at.line, 7);
    }

    #[test]
    fn quoted_strings_keep_spaces_and_comment_marks() {
        let t = parse("misc_path \"/bin/check --x #1 !\"\n").unwrap();
        assert_eq!(t[0].args, ["/bin/check --x #1 !"]);
    }

    #[test]
    fn unbalanced_braces_are_errors_with_the_line() {
        assert!(parse("a {\n b\n").unwrap_err().contains("t:1: this block is not closed"));
        assert!(parse("a\n}\n").unwrap_err().contains("t:2: `}` closes no block"));
        assert!(parse("x \"open\n").unwrap_err().contains("not closed"));
    }

    #[test]
    fn wildcards() {
        assert!(matches(b"*.conf", b"a.conf"));
        assert!(!matches(b"*.conf", b".a.conf"));
        assert!(matches(b"vs-??.conf", b"vs-01.conf"));
        assert!(!matches(b"vs-??.conf", b"vs-1.conf"));
    }
}
