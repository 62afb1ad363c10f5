//! Generate-time checks of the jq filters a spec's transforms run (`x-gateway.transform.*.body`).
//!
//! A filter is lexed, parsed and compiled by jaq exactly as the runtime compiles it (see `JqFilter::compile` in
//! gateway-runtime), so a filter that passes here compiles there. What jaq reports is turned into messages a spec
//! author can act on, each with the character offset in the filter where the problem is: the caller adds that to
//! where the filter's text starts in the spec (see [`crate::locate::position_in_scalar`]).
//!
//! jaq reports its errors as slices of the filter's text (what it expected, and the text it found instead), so the
//! offset of an error is where that slice starts. A few of jaq's errors need care to be useful:
//!
//! - an unclosed `{`, `(`, `[` or `"` is found at the end of the filter, where it helps nobody: it is reported at the
//!   delimiter that opened it instead;
//! - one stray character makes every enclosing block fail at the same place: only the most telling error is kept;
//! - an unclosed string swallows the rest of the filter, so the blocks around it are unclosed too: only the string
//!   is reported.

use std::collections::BTreeSet;

use jaq_core::compile::Undefined;
use jaq_core::load::lex::{StrPart, Tok, Token};
use jaq_core::load::{self, Arena, File, Loader, lex, parse};
use jaq_core::{Bind, Compiler, Native, data};
use jaq_json::Val;

use crate::diagnostics::did_you_mean;

/// The variables every filter may use (values supplied per request by the runtime).
pub const GLOBALS: [&str; 4] = ["$path", "$query", "$header", "$context"];

/// The runtime's data type: filters run on JSON values with the look-up table of the compiled filter.
type Data = data::JustLut<Val>;

/// A native filter: its name, its arguments, and its implementation.
type NativeFilter<'s> = (&'s str, Box<[Bind]>, Native<Data>);

/// One problem in a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Where the problem is: a character (not byte) offset into the filter's text. The length of the text when the
    /// problem is that the filter ends too early.
    pub offset: usize,
    /// What is wrong, phrased for the spec's author.
    pub message: String,
}

/// Parses and compiles `code` exactly as the runtime will: the same definitions and native filters (jaq-core,
/// jaq-std and jaq-json), and [`GLOBALS`] as the global variables. `Err` holds every error found, ordered by offset.
pub fn check_filter(code: &str) -> Result<(), Vec<FilterError>> {
    // (byte offset, message), turned into character offsets at the end.
    let mut errors: Vec<(usize, String)> = Vec::new();
    let defs: Vec<parse::Def<&str>> = prelude().collect();
    let arena = Arena::default();
    match Loader::new(defs).load(&arena, File { code, path: () }) {
        Err(errs) => {
            for (_file, err) in errs {
                match err {
                    load::Error::Io(items) => {
                        for (path, _why) in items {
                            let message = format!(
                                "cannot include or import `{path}`: gateway filters cannot use modules; define the \
                                 filters you need with `def name: ...;` at the start of the filter"
                            );
                            errors.push((byte_offset(code, path), message));
                        }
                    }
                    load::Error::Lex(items) => errors.extend(lex_errors(code, &items)),
                    load::Error::Parse(items) => {
                        errors.extend(items.iter().map(|(expect, found)| parse_error(code, expect, found)));
                    }
                }
            }
        }
        Ok(modules) => {
            // `import "file" as $name;` binds a variable to a data file: the runtime supplies no such values.
            let imports = load::import(&modules, |import| {
                let message = format!(
                    "cannot import `{}`: gateway filters cannot read data files; the values they get are {}",
                    import.path,
                    globals_list()
                );
                errors.push((byte_offset(code, import.path), message));
                Ok(())
            });
            debug_assert!(imports.is_ok(), "the import visitor never fails");
            let funs: Vec<NativeFilter<'_>> = natives().collect();
            let compiled = Compiler::default()
                .with_funs(funs)
                .with_global_vars(GLOBALS)
                .compile(modules);
            if let Err(errs) = compiled {
                let scope = Scope::of(code);
                for (_file, items) in errs {
                    for (name, undefined) in items {
                        errors.push((byte_offset(code, name), undefined_message(name, &undefined, &scope)));
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        errors.extend(denied(code));
    }
    if errors.is_empty() {
        return Ok(());
    }
    let mut out: Vec<FilterError> = errors
        .into_iter()
        .map(|(byte, message)| FilterError {
            offset: char_offset(code, byte),
            message,
        })
        .collect();
    out.sort_by_key(|e| e.offset);
    out.dedup();
    Err(out)
}

/// Filters jq has that a gateway must not run: they read the process's environment (`env`, `$ENV`, where secrets
/// live), end the process (`halt`, `halt_error`), read its standard input (`input`, `inputs`) or write to its
/// standard error past the log (`debug`, `stderr`).
const DENIED: &[&str] = &[
    "halt",
    "halt_error",
    "env",
    "$ENV",
    "input",
    "inputs",
    "input_filename",
    "debug",
    "stderr",
];

/// Calls of [`DENIED`] filters in `code` (byte offset, message). Names inside strings and comments, object keys
/// (`{env: 1}`) and field accesses (`.env`) are not calls.
fn denied(code: &str) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b if b == b'$' || b == b'_' || b.is_ascii_alphabetic() => {
                let start = i;
                i += 1;
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                let word = &code[start..i];
                let before = code[..start].trim_end().chars().last();
                let after = code[i..].trim_start();
                let key = after.starts_with(':') && !after.starts_with("::");
                if DENIED.contains(&word) && before != Some('.') && !key {
                    found.push((
                        start,
                        format!(
                            "`{word}` is not available in gateway filters: it would reach the gateway process \
                             (its environment, input or exit) rather than the message"
                        ),
                    ));
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// The definitions the runtime loads before a filter (`map`, `select`, `test`, …).
fn prelude() -> impl Iterator<Item = parse::Def<&'static str>> {
    jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs())
}

/// The native filters the runtime compiles with (`length`, `keys`, …).
fn natives() -> impl Iterator<Item = NativeFilter<'static>> {
    jaq_core::funs::<Data>()
        .chain(jaq_std::funs::<Data>())
        .chain(jaq_json::funs::<Data>())
}

/// `$path`, `$query`, `$header` and `$context`, for messages.
fn globals_list() -> String {
    let quoted: Vec<String> = GLOBALS.iter().map(|g| format!("`{g}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

// ---- positions ----

/// The byte offset of `part` in `code`, when `part` is a slice of `code` (as every slice in jaq's errors about the
/// main filter is); 0 otherwise.
fn byte_offset(code: &str, part: &str) -> usize {
    let start = code.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    match at.checked_sub(start) {
        Some(offset) if offset.saturating_add(part.len()) <= code.len() => offset,
        _ => 0,
    }
}

/// The character offset of byte offset `byte` in `code` (rounded down to a character boundary).
fn char_offset(code: &str, byte: usize) -> usize {
    let mut byte = byte.min(code.len());
    while !code.is_char_boundary(byte) {
        byte -= 1;
    }
    code[..byte].chars().count()
}

/// A token as it appears in a message: "the end of the filter", or its text in backticks (only the opening
/// delimiter of a block, only the first line of a long token).
fn describe(token: &str) -> String {
    let Some(first) = token.chars().next() else {
        return String::from("the end of the filter");
    };
    if matches!(first, '(' | '[' | '{') {
        return format!("`{first}`");
    }
    let line = token.lines().next().unwrap_or(token);
    let short: String = line.chars().take(24).collect();
    if short.len() < token.len() {
        format!("`{short}…`")
    } else {
        format!("`{short}`")
    }
}

/// The first character of `rest` (the remaining input, where the lexer stopped), as a token for [`describe`].
fn first_char(rest: &str) -> &str {
    match rest.char_indices().nth(1) {
        Some((end, _)) => &rest[..end],
        None => rest,
    }
}

// ---- lexing ----

/// What each opening delimiter opens, for messages.
fn opened(open: &str) -> (&'static str, &'static str) {
    match open {
        "(" => (")", "parenthesis"),
        "[" => ("]", "bracket"),
        "{" => ("}", "object"),
        _ => ("\"", "string"),
    }
}

/// The lexer's errors, with the ones that only follow from another left out (see the module's documentation).
fn lex_errors(code: &str, items: &[lex::Error<&str>]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut unclosed_string = false;
    for (i, (expect, found)) in items.iter().enumerate() {
        let at = byte_offset(code, found);
        if let lex::Expect::Delim(open) = expect {
            if found.is_empty() {
                // The filter ended inside this block. After an unclosed string, every enclosing block is unclosed
                // only because the string took the rest of the filter.
                if unclosed_string {
                    continue;
                }
                let (close, what) = opened(open);
                let message = if *open == "\"" {
                    unclosed_string = true;
                    String::from("unterminated string: expected `\"` to close the string opened here")
                } else {
                    format!("expected `{close}` to close the {what} opened here")
                };
                out.push((byte_offset(code, open), message));
                continue;
            }
            // The block stopped at a character that cannot continue it. When that character cannot start any token,
            // the lexer also reports it at the top level: report only that. When it is another closing delimiter,
            // every enclosing block stopped there too: report only the innermost.
            let stray = !found.starts_with([')', ']', '}']);
            let earlier_here = items[..i]
                .iter()
                .any(|(e, f)| matches!(e, lex::Expect::Delim(_)) && byte_offset(code, f) == at);
            if stray || earlier_here {
                continue;
            }
            let (close, what) = opened(open);
            let message = format!(
                "expected `{close}` to close the {what}, found {}",
                describe(first_char(found))
            );
            out.push((at, message));
            continue;
        }
        if matches!(expect, lex::Expect::Token) {
            let closer_reported = items
                .iter()
                .any(|(e, f)| matches!(e, lex::Expect::Delim(_)) && byte_offset(code, f) == at)
                && found.starts_with([')', ']', '}']);
            if closer_reported {
                continue;
            }
        }
        out.push(lex_error(code, expect, found, at));
    }
    out
}

/// One lexer error other than an unclosed block: where it is reported, and the message.
fn lex_error(code: &str, expect: &lex::Expect<&str>, found: &str, at: usize) -> (usize, String) {
    let before = &code[..at];
    let previous = before.chars().next_back();
    let found_text = describe(first_char(found));
    match expect {
        lex::Expect::Digit => {
            let after = previous.map_or(String::new(), |c| format!(" after `{c}`"));
            (at, format!("expected a digit{after} in a number, found {found_text}"))
        }
        lex::Expect::Ident => {
            let what = match previous {
                Some('$') => "a variable name after `$`",
                Some('@') => "a format name after `@`",
                _ => "a name after `::`",
            };
            (at, format!("expected {what}, found {found_text}"))
        }
        lex::Expect::Escape => {
            let backslash = at.saturating_sub(1);
            let message = match found.chars().next() {
                Some(c) => format!(
                    "unknown escape `\\{c}` in a string; jq knows `\\\\`, `\\/`, `\\\"`, `\\b`, `\\f`, `\\n`, `\\r`, \
                     `\\t`, `\\uXXXX` and `\\(...)`"
                ),
                None => String::from("the filter ends with a `\\` inside a string"),
            };
            (backslash, message)
        }
        lex::Expect::Unicode => {
            let escape = before.rfind("\\u").unwrap_or(at);
            let digits: String = code[escape..].chars().skip(2).take(4).collect();
            let message = if digits.len() == 4 && digits.chars().all(|c| c.is_ascii_hexdigit()) {
                format!(
                    "`\\u{digits}` is not a character jaq accepts (UTF-16 surrogates are not); write the character \
                     itself"
                )
            } else {
                String::from("`\\u` must be followed by 4 hexadecimal digits (`\\u00e9`)")
            };
            (escape, message)
        }
        lex::Expect::Token => {
            let message = match found.chars().next() {
                Some(c @ (')' | ']' | '}')) => {
                    let open = match c {
                        ')' => '(',
                        ']' => '[',
                        _ => '{',
                    };
                    format!("unexpected `{c}`: there is no `{open}` for it to close")
                }
                Some('&') => String::from("unexpected character `&`; jq writes \"and\" as `and`"),
                Some('\'') => String::from("unexpected character `'`; jq strings are written in double quotes"),
                Some(c) if c.is_alphabetic() => format!(
                    "unexpected character `{c}`; jq names are ASCII only: quote a key like this (`.\"{c}\"`, \
                     `{{\"{c}\": ...}}`)"
                ),
                Some(c) => format!("unexpected character `{c}`"),
                None => String::from("unexpected end of the filter"),
            };
            (at, message)
        }
        lex::Expect::Delim(open) => {
            let (close, what) = opened(open);
            (
                at,
                format!("expected `{close}` to close the {what}, found {found_text}"),
            )
        }
        _ => (at, format!("unexpected {found_text}")),
    }
}

// ---- parsing ----

/// One parser error: where it is reported, and the message.
fn parse_error(code: &str, expect: &parse::Expect<&str>, found: &str) -> (usize, String) {
    let at = byte_offset(code, found);
    let found_text = describe(found);
    let hint = match found {
        "||" => "; jq writes \"or\" as `or`",
        "!" => "; jq writes \"not\" as a filter: `(...) | not`",
        "===" => "; jq compares with `==`",
        _ => "",
    };
    let expected = match expect {
        parse::Expect::Nothing => {
            let message =
                format!("unexpected {found_text} after a complete filter; filters are joined with `|` or `,`");
            return (at, message + hint);
        }
        parse::Expect::Term if code.trim().is_empty() => {
            return (
                at,
                String::from("the filter is empty; `.` passes the body on unchanged"),
            );
        }
        parse::Expect::Just(token) => format!("`{token}`"),
        parse::Expect::Var => String::from("a variable such as `$x`"),
        parse::Expect::Pattern => String::from("a variable or a pattern (`$x`, `[$a, $b]`, `{$a}`) after `as`"),
        parse::Expect::ElseOrEnd => String::from("`elif`, `else` or `end`"),
        parse::Expect::CommaOrRBrack => String::from("`,` or `]`"),
        parse::Expect::CommaOrRBrace => String::from("`,` or `}`"),
        parse::Expect::SemicolonOrRParen => String::from("`;` or `)` (arguments are separated by `;`)"),
        parse::Expect::Term => String::from("a value or a filter"),
        parse::Expect::Key => String::from("a key (a name or a string) after `.`"),
        parse::Expect::Ident => String::from("a name"),
        parse::Expect::Arg => String::from("an argument name (`f` or `$x`)"),
        parse::Expect::Str => String::from("a string"),
        other => other.as_str().to_owned(),
    };
    (at, format!("expected {expected}, found {found_text}{hint}"))
}

// ---- compiling ----

/// The names a filter could have meant: the prelude's and native filters, and what the filter defines and binds.
struct Scope {
    /// Filter names with their arity.
    filters: BTreeSet<(String, usize)>,
    /// Variable names (with `$`): the globals and every variable the filter mentions.
    vars: BTreeSet<String>,
}

impl Scope {
    fn of(code: &str) -> Self {
        let mut scope = Self {
            filters: prelude()
                .map(|d| (d.name.to_owned(), d.args.len()))
                .chain(natives().map(|(name, args, _)| (name.to_owned(), args.len())))
                .filter(|(name, _)| !name.starts_with(['!', '_']))
                .collect(),
            vars: GLOBALS.iter().map(|g| (*g).to_owned()).collect(),
        };
        // The code lexed before it compiled, so this succeeds.
        if let Ok(tokens) = lex::Lexer::new(code).lex() {
            scope.add(&tokens);
        }
        scope
    }

    /// Adds the definitions (`def name(a; b):`) and variables in `tokens`, nested blocks and strings included.
    fn add(&mut self, tokens: &[Token<&str>]) {
        for (i, Token(text, tok)) in tokens.iter().enumerate() {
            match tok {
                Tok::Var => {
                    self.vars.insert((*text).to_owned());
                }
                Tok::Word if *text == "def" => {
                    if let Some(Token(name, Tok::Word | Tok::Fmt)) = tokens.get(i + 1) {
                        let arity = match tokens.get(i + 2) {
                            Some(Token(args, Tok::Block(inner))) if args.starts_with('(') => {
                                1 + inner
                                    .iter()
                                    .filter(|Token(t, tok)| *t == ";" && matches!(tok, Tok::Sym))
                                    .count()
                            }
                            _ => 0,
                        };
                        self.filters.insert(((*name).to_owned(), arity));
                    }
                }
                Tok::Block(inner) => self.add(inner),
                Tok::Str(parts) => {
                    for part in parts {
                        if let StrPart::Term(token) = part {
                            self.add(std::slice::from_ref(token));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// `1 argument`, `1 or 2 arguments`, `no arguments`.
fn arities(list: &[usize]) -> String {
    let words: Vec<String> = list.iter().map(usize::to_string).collect();
    let joined = match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => words.join(""),
    };
    match list {
        [0] => String::from("no arguments"),
        [1] => String::from("1 argument"),
        _ => format!("{joined} arguments"),
    }
}

/// The message for a name the compiler could not resolve.
fn undefined_message(name: &str, undefined: &Undefined, scope: &Scope) -> String {
    match undefined {
        Undefined::Var => {
            let others = scope.vars.iter().map(String::as_str).filter(|v| *v != name);
            match did_you_mean(name, others) {
                Some(best) => format!("undefined variable `{name}`; did you mean `{best}`?"),
                None => format!(
                    "undefined variable `{name}`; the values a filter gets are {}, besides the variables it binds \
                     itself (`... as $x`)",
                    globals_list()
                ),
            }
        }
        Undefined::Filter(arity) if matches!(name, "reduce" | "foreach") => {
            let takes = if name == "reduce" { "2" } else { "2 or 3" };
            format!(
                "`{name}` takes {takes} arguments after `as $x`, as in `{name} .[] as $x (INIT; UPDATE)`, not {arity}"
            )
        }
        Undefined::Filter(arity) => {
            let what = if name.starts_with('@') { "format" } else { "filter" };
            let mut same_name: Vec<usize> = scope
                .filters
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .collect();
            same_name.sort_unstable();
            if !same_name.is_empty() {
                let args = if *arity == 1 {
                    "1 argument"
                } else {
                    &format!("{arity} arguments")
                };
                return format!(
                    "undefined {what} `{name}/{arity}`: `{name}` takes {}, not {args}",
                    arities(&same_name)
                );
            }
            let same_arity = scope
                .filters
                .iter()
                .filter(|(_, a)| a == arity)
                .map(|(n, _)| n.as_str());
            let any = scope.filters.iter().map(|(n, _)| n.as_str());
            match did_you_mean(name, same_arity).or_else(|| did_you_mean(name, any)) {
                Some(best) => format!("undefined {what} `{name}/{arity}`; did you mean `{best}`?"),
                None => format!("undefined {what} `{name}/{arity}`"),
            }
        }
        Undefined::Label => {
            format!("undefined label `{name}`; `break {name}` must be inside `label {name} | ...`")
        }
        Undefined::Mod => format!("undefined module `{name}`; gateway filters cannot use modules"),
        other => format!("undefined {} `{name}`", other.as_str()),
    }
}

#[cfg(test)]
mod denied_tests {
    use super::*;

    #[test]
    fn filters_that_reach_the_process_are_refused() {
        // `$ENV` and `input` are not even defined (the globals are the gateway's four; there is no input stream).
        assert!(check_filter("$ENV.PATH").is_err());
        assert!(check_filter("input").is_err());
        for code in ["halt", "env.HOME", ".a | debug", r#""x" | halt_error(1)"#] {
            let errors = check_filter(code).expect_err(code);
            assert!(
                errors.iter().any(|e| e.message.contains("not available")),
                "{code}: {errors:?}"
            );
        }
        for code in [".env", "{env: 1, debug: 2}", r#""halt""#, ".input | length"] {
            assert_eq!(check_filter(code), Ok(()), "{code}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The errors of `code`, as (offset, message) pairs.
    fn errors(code: &str) -> Vec<(usize, String)> {
        match check_filter(code) {
            Ok(()) => panic!("`{code}` should not compile"),
            Err(errs) => errs.into_iter().map(|e| (e.offset, e.message)).collect(),
        }
    }

    /// The only error of `code`.
    fn error(code: &str) -> (usize, String) {
        let errs = errors(code);
        assert_eq!(errs.len(), 1, "`{code}`: {errs:#?}");
        errs.into_iter().next().expect("one error")
    }

    #[test]
    fn filters_that_compile() {
        for code in [
            ".",
            "{name: .name, tag: (.tag // \"none\")}",
            "{id: .id,\n name: .name}\n",
            "{id: $path.petId, q: $query.q, ua: $header[\"user-agent\"], rid: $context.request_id}",
            ".items | map(select(.price > 10)) | length",
            "\"pet \\(.name) is \\(.age) years old\"",
            ".name | test(\"^[a-z]+$\")",
            "[.[] | {k: .key}] | sort_by(.k)",
            "def twice(f): f | f; .n | twice(. * 2)",
            "reduce .[] as $x (0; . + $x)",
            "if .a then .b elif .c then .d else empty end",
            "try error(\"x\") catch .",
            ".a as [$x, {b: $y}] | $x + $y",
            "@base64 \"\\(.a)\"",
            "label $out | .[] | if . > 1 then ., break $out else . end",
            "to_entries | from_entries | keys | tojson | fromjson",
            "# a comment\n.a",
            "{\"é\": .\"é\"?, \"ü\": 1}",
        ] {
            assert_eq!(check_filter(code), Ok(()), "`{code}`");
        }
    }

    #[test]
    fn unclosed_object_is_reported_where_it_opens() {
        assert_eq!(
            error("{name: .name"),
            (0, String::from("expected `}` to close the object opened here"))
        );
        // Offsets count characters, not bytes.
        assert_eq!(
            error("\"é\" + {a: 1"),
            (6, String::from("expected `}` to close the object opened here"))
        );
    }

    #[test]
    fn nested_unclosed_blocks_are_each_reported() {
        assert_eq!(
            errors("{a: [1, 2"),
            [
                (0, String::from("expected `}` to close the object opened here")),
                (4, String::from("expected `]` to close the bracket opened here")),
            ]
        );
    }

    #[test]
    fn mismatched_closer_is_reported_where_it_is() {
        assert_eq!(
            error("{a: (.b | length}"),
            (16, String::from("expected `)` to close the parenthesis, found `}`"))
        );
        assert_eq!(
            error("{a: [1 )"),
            (7, String::from("expected `]` to close the bracket, found `)`"))
        );
        assert_eq!(
            error(".a)"),
            (2, String::from("unexpected `)`: there is no `(` for it to close"))
        );
    }

    #[test]
    fn bad_token() {
        assert_eq!(
            error(".a && .b"),
            (3, String::from("unexpected character `&`; jq writes \"and\" as `and`"))
        );
        // Inside blocks too: the stray character is the error, not the blocks it interrupts.
        assert_eq!(error("{a: [.x § 1]}"), (8, String::from("unexpected character `§`")));
        assert_eq!(
            error(".a | 'x'"),
            (
                5,
                String::from("unexpected character `'`; jq strings are written in double quotes")
            )
        );
    }

    #[test]
    fn unclosed_string() {
        assert_eq!(
            error("{a: \"foo}"),
            (
                4,
                String::from("unterminated string: expected `\"` to close the string opened here")
            )
        );
        assert_eq!(
            error(".a + \"x\\(.b\""),
            (
                11,
                String::from("unterminated string: expected `\"` to close the string opened here")
            )
        );
    }

    #[test]
    fn non_ascii_names() {
        assert_eq!(
            error(".é"),
            (
                1,
                String::from(
                    "unexpected character `é`; jq names are ASCII only: quote a key like this (`.\"é\"`, `{\"é\": ...}`)"
                )
            )
        );
    }

    #[test]
    fn other_lex_errors() {
        assert_eq!(
            error("1. + 2"),
            (2, String::from("expected a digit after `.` in a number, found ` `"))
        );
        assert_eq!(
            error("$ + 1"),
            (1, String::from("expected a variable name after `$`, found ` `"))
        );
        let (offset, message) = error("\"a\\qb\"");
        assert_eq!(offset, 2);
        assert!(message.starts_with("unknown escape `\\q` in a string"), "{message}");
        assert_eq!(
            error("\"\\u12x4\""),
            (
                1,
                String::from("`\\u` must be followed by 4 hexadecimal digits (`\\u00e9`)")
            )
        );
        let (offset, message) = error("\"\\uD800\"");
        assert_eq!(offset, 1);
        assert!(message.starts_with("`\\uD800` is not a character"), "{message}");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            error("{a: 1 b: 2}"),
            (6, String::from("expected `,` or `}`, found `b`"))
        );
        assert_eq!(
            error(".a |"),
            (
                4,
                String::from("expected a value or a filter, found the end of the filter")
            )
        );
        assert_eq!(
            error("if .a then 1"),
            (
                12,
                String::from("expected `elif`, `else` or `end`, found the end of the filter")
            )
        );
        assert_eq!(
            error(".a .b 1"),
            (
                6,
                String::from("unexpected `1` after a complete filter; filters are joined with `|` or `,`")
            )
        );
        assert_eq!(
            error(".a || .b"),
            (
                3,
                String::from(
                    "unexpected `||` after a complete filter; filters are joined with `|` or `,`; jq writes \"or\" \
                     as `or`"
                )
            )
        );
        assert_eq!(
            error("  "),
            (2, String::from("the filter is empty; `.` passes the body on unchanged"))
        );
        // Errors in separate blocks are all reported.
        assert_eq!(
            errors("[(1 2), {a: 1 b}]"),
            [
                (4, String::from("expected `)`, found `2`")),
                (14, String::from("expected `,` or `}`, found `b`")),
            ]
        );
    }

    #[test]
    fn undefined_filter_with_did_you_mean() {
        assert_eq!(
            error(".items | lenght"),
            (9, String::from("undefined filter `lenght/0`; did you mean `length`?"))
        );
        assert_eq!(
            error("[.[] | selcet(.a)]"),
            (7, String::from("undefined filter `selcet/1`; did you mean `select`?"))
        );
        // The filter's own definitions are candidates too.
        assert_eq!(
            error("def double: . * 2; .n | doubel"),
            (24, String::from("undefined filter `doubel/0`; did you mean `double`?"))
        );
        assert_eq!(error(".a | xyzzy"), (5, String::from("undefined filter `xyzzy/0`")));
        assert_eq!(
            error("\"\\(.a)\" | @base46"),
            (
                10,
                String::from("undefined format `@base46/0`; did you mean `@base64`?")
            )
        );
    }

    #[test]
    fn known_filter_with_the_wrong_arity() {
        assert_eq!(
            error(".a | map"),
            (
                5,
                String::from("undefined filter `map/0`: `map` takes 1 argument, not 0 arguments")
            )
        );
        let (offset, message) = error("reduce .[] as $x (0)");
        assert_eq!(offset, 0);
        assert!(message.starts_with("`reduce` takes 2 arguments"), "{message}");
    }

    #[test]
    fn undefined_variable() {
        assert_eq!(
            error("{user: $jwt.sub}"),
            (
                7,
                String::from(
                    "undefined variable `$jwt`; the values a filter gets are `$path`, `$query`, `$header` and \
                     `$context`, besides the variables it binds itself (`... as $x`)"
                )
            )
        );
        assert_eq!(
            error("{ua: $headers[\"user-agent\"]}"),
            (
                5,
                String::from("undefined variable `$headers`; did you mean `$header`?")
            )
        );
        // A variable used outside of where it is bound.
        let (offset, message) = error("(.a as $x | $x), $x");
        assert_eq!(offset, 17);
        assert!(message.starts_with("undefined variable `$x`;"), "{message}");
    }

    #[test]
    fn undefined_label_and_modules() {
        let (offset, message) = error(".[] | break $out");
        assert_eq!(offset, 12);
        assert!(message.starts_with("undefined label `$out`"), "{message}");
        let (offset, message) = error("include \"lib\"; .");
        assert_eq!(offset, 9);
        assert!(message.starts_with("cannot include or import `lib`"), "{message}");
        let (offset, message) = error("import \"data\" as $d; $d");
        assert_eq!(offset, 8);
        assert!(message.starts_with("cannot import `data`"), "{message}");
        let (offset, message) = error("m::f");
        assert_eq!(offset, 0);
        assert!(message.starts_with("undefined module `m`"), "{message}");
    }

    #[test]
    fn every_error_is_reported() {
        let errs = errors("{a: lenght, b: $jwt, c: nope(1)}");
        let offsets: Vec<usize> = errs.iter().map(|e| e.0).collect();
        assert_eq!(offsets, [4, 15, 24], "{errs:#?}");
    }

    /// Checks the filter at each pointer of `text` as the validation of a spec would, and renders the diagnostics.
    fn render(text: &str, pointers: &[&str]) -> Vec<(usize, usize, String)> {
        use crate::diagnostics::{Diagnostic, Diagnostics};
        let mut diags = Diagnostics::default();
        for pointer in pointers {
            let scalar = crate::locate::locate_scalar(text, pointer).expect("a filter");
            for e in check_filter(&scalar.value).expect_err("a broken filter") {
                diags.push(Diagnostic::error(*pointer, e.message).at_offset(e.offset));
            }
        }
        diags
            .render("specs/t.yaml", text)
            .into_iter()
            .map(|d| {
                let at = d.location.expect("located");
                (at.line, at.column, d.message)
            })
            .collect()
    }

    #[test]
    fn errors_are_rendered_where_they_are_in_each_scalar_style() {
        let text = r#"openapi: 3.0.3
paths:
  /pets:
    get:
      x-gateway:
        transform:
          request:
            body: '{name: .name, tag: (.tag // "none")'
          response:
            body: |
              {id: .id,
               name: lenght}
    post:
      x-gateway:
        transform:
          request:
            body: "{a: $jwt}"
          response:
            body: >
              .items |
              map(.id) | $heder
    put:
      x-gateway:
        transform:
          request:
            body: .a | .b &
          response:
            body: |-
              [.a,
               "unterminated]
"#;
        let at = |method: &str, side: &str| format!("/paths/~1pets/{method}/x-gateway/transform/{side}/body");
        let pointers = [
            at("get", "request"),
            at("get", "response"),
            at("post", "request"),
            at("post", "response"),
            at("put", "request"),
            at("put", "response"),
        ];
        let pointers: Vec<&str> = pointers.iter().map(String::as_str).collect();
        let rendered = render(text, &pointers);
        let places: Vec<(usize, usize)> = rendered.iter().map(|(line, column, _)| (*line, *column)).collect();
        // Single-quoted: the `{` after the quote; literal: `lenght` on the block's second line; double-quoted:
        // `$jwt`; folded: `$heder` on the second source line; plain: `&`; literal `|-`: the opening `"`.
        assert_eq!(
            places,
            [(8, 20), (12, 22), (17, 24), (21, 26), (26, 27), (30, 16)],
            "{rendered:#?}"
        );
        assert_eq!(rendered[0].2, "expected `}` to close the object opened here");
        assert_eq!(rendered[1].2, "undefined filter `lenght/0`; did you mean `length`?");
        assert!(
            rendered[2].2.starts_with("undefined variable `$jwt`"),
            "{}",
            rendered[2].2
        );
        assert_eq!(rendered[3].2, "undefined variable `$heder`; did you mean `$header`?");
        assert_eq!(rendered[4].2, "unexpected character `&`; jq writes \"and\" as `and`");
        assert_eq!(
            rendered[5].2,
            "unterminated string: expected `\"` to close the string opened here"
        );
    }

    #[test]
    fn errors_are_rendered_where_they_are_in_json() {
        let text = "{\n  \"x\": {\n    \"body\": \"{\\\"a\\\": .a | lenght}\"\n  }\n}\n";
        assert_eq!(
            render(text, &["/x/body"]),
            [(
                3,
                27,
                String::from("undefined filter `lenght/0`; did you mean `length`?")
            )]
        );
    }
}
