//! Wildcards in the last component of a LIST, NLST or STAT path, as vsftpd and
//! ProFTPD expand them for clients such as tnftp's `mget` and ncftpget.
//!
//! `*` matches any run of characters (also none, also a leading dot), `?` one
//! character, `[...]` one character of a set: ranges (`a-z`), negation with a leading
//! `!` or `^`, and a `]` right after the opening bracket (or its negation) is a member.
//! A `[` without its `]` is an ordinary character. There is no escape character: a name
//! that really contains `*` is listed because the literal path exists, which is checked
//! first.
//!
//! The matcher never backtracks further than to the last `*` it passed (each other
//! token takes exactly one character, so that is enough), and it counts its steps:
//! past [`MATCH_STEPS_MAX`] for one name the name does not match, as vsftpd's
//! `VSFTP_MATCHITERS_MAX` does. So a hostile pattern costs a bounded amount of work per
//! directory entry, however long the pattern or the name.

/// The most steps (one token tried against one character, or one range of a set)
/// spent on one name. Ordinary patterns on names of up to 255 bytes stay far below
/// it; a name that needs more is taken as not matching.
pub(in crate::server) const MATCH_STEPS_MAX: usize = 4096;

/// A compiled wildcard pattern for one path component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::server) struct Pattern {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters.
    Any,
    /// `?`: any one character.
    One,
    /// A character that matches itself.
    Char(char),
    /// `[...]`: one character of the ranges (a single character is a range of one),
    /// or of none of them when negated.
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Whether `text` has a character that makes it a pattern rather than a name.
pub(in crate::server) fn has_wildcards(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

impl Pattern {
    /// Compiles `text`. Every text is a pattern: malformed sets are literal brackets.
    pub(in crate::server) fn new(text: &str) -> Pattern {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::with_capacity(chars.len());
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            match c {
                // Runs of stars are one star: the same language, less work.
                '*' if tokens.last() == Some(&Token::Any) => {}
                '*' => tokens.push(Token::Any),
                '?' => tokens.push(Token::One),
                '[' => match parse_set(&chars[i..]) {
                    Some((set, used)) => {
                        tokens.push(set);
                        i += used;
                    }
                    None => tokens.push(Token::Char('[')),
                },
                c => tokens.push(Token::Char(c)),
            }
        }
        Pattern { tokens }
    }

    /// Whether the whole of `name` matches.
    pub(in crate::server) fn matches(&self, name: &str) -> bool {
        let tokens = &self.tokens;
        let mut budget = MATCH_STEPS_MAX;
        let (mut t, mut n) = (0, 0);
        // The token after the last `*` passed, and where in the name it was tried.
        let mut star: Option<(usize, usize)> = None;
        loop {
            if budget == 0 {
                return false;
            }
            budget -= 1;
            let next = name[n..].chars().next();
            match (tokens.get(t), next) {
                (None, None) => return true,
                (Some(Token::Any), _) => {
                    star = Some((t + 1, n));
                    t += 1;
                    continue;
                }
                (Some(token), Some(c)) if token.takes(c, &mut budget) => {
                    t += 1;
                    n += c.len_utf8();
                    continue;
                }
                _ => {}
            }
            // A mismatch: let the last star take one more character and retry.
            let Some((after, from)) = star else {
                return false;
            };
            let Some(c) = name[from..].chars().next() else {
                return false;
            };
            star = Some((after, from + c.len_utf8()));
            t = after;
            n = from + c.len_utf8();
        }
    }
}

impl Token {
    /// Whether this one-character token takes `c`; a set charges its ranges to `budget`.
    fn takes(&self, c: char, budget: &mut usize) -> bool {
        match self {
            Token::Any | Token::One => true,
            Token::Char(x) => *x == c,
            Token::Set { negated, ranges } => {
                *budget = budget.saturating_sub(ranges.len());
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// Parses a set from just after its `[`: the token and how many characters it used
/// (up to and with the `]`), or `None` when no `]` closes it.
fn parse_set(chars: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        i += 1;
        if c == ']' && !first {
            return Some((Token::Set { negated, ranges }, i));
        }
        first = false;
        match (chars.get(i), chars.get(i + 1)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                i += 2;
                ranges.push((c, hi));
            }
            _ => ranges.push((c, c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pattern: &str, name: &str) -> bool {
        Pattern::new(pattern).matches(name)
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*.txt", "a.txt"));
        assert!(m("*.txt", ".txt"));
        assert!(m("*.txt", ".hidden.txt"));
        assert!(!m("*.txt", "a.txt.bak"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("?.bin", "x.bin"));
        assert!(!m("?.bin", ".bin"));
        assert!(m("*", ""));
        assert!(m("**", "anything"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(m("é?", "éü"));
    }

    #[test]
    fn sets_ranges_and_negation() {
        assert!(m("[ab].txt", "a.txt"));
        assert!(m("[ab].txt", "b.txt"));
        assert!(!m("[ab].txt", "c.txt"));
        assert!(m("[!a].txt", "b.txt"));
        assert!(!m("[!a].txt", "a.txt"));
        assert!(m("[^a].txt", "b.txt"));
        assert!(m("file[0-9]", "file7"));
        assert!(!m("file[0-9]", "filex"));
        assert!(m("[a-cx]", "x"));
        assert!(!m("[a-cx]", "d"));
        // `]` first is a member; `-` last is a member.
        assert!(m("[]a]", "]"));
        assert!(m("[!]a]", "b"));
        assert!(!m("[!]a]", "]"));
        assert!(m("[a-]", "-"));
        // An unclosed `[` is a character.
        assert!(m("[ab", "[ab"));
        assert!(!m("[ab", "a"));
        assert!(m("x[", "x["));
    }

    #[test]
    fn hostile_patterns_stay_bounded() {
        let name = "a".repeat(255);
        let pattern = format!("{}b", "*a".repeat(2000));
        // Would take exponential time with naive backtracking; here it gives up.
        assert!(!m(&pattern, &name));
        let set = format!("[{}]", "x".repeat(100_000));
        assert!(!m(&set, "a"));
        assert!(m(&format!("{}*", "a".repeat(100)), &name));
    }

    /// The plain recursive definition, for small inputs.
    fn reference(tokens: &[Token], name: &[char]) -> bool {
        match tokens.split_first() {
            None => name.is_empty(),
            Some((Token::Any, rest)) => (0..=name.len()).any(|k| reference(rest, &name[k..])),
            Some((token, rest)) => match name.split_first() {
                Some((&c, tail)) => {
                    let mut budget = usize::MAX;
                    token.takes(c, &mut budget) && reference(rest, tail)
                }
                None => false,
            },
        }
    }

    proptest! {
        #[test]
        fn matches_the_reference(pattern in "[ab*?\\[\\]!^-]{0,8}", name in "[ab\\]!-]{0,10}") {
            let compiled = Pattern::new(&pattern);
            let chars: Vec<char> = name.chars().collect();
            prop_assert_eq!(compiled.matches(&name), reference(&compiled.tokens, &chars));
        }

        #[test]
        fn never_panics(pattern in "\\PC{0,40}", name in "\\PC{0,40}") {
            let _ = Pattern::new(&pattern).matches(&name);
        }
    }
}
