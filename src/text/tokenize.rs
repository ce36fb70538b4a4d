//! Caption tokenization shared by the metrics and the vocabulary.
//!
//! pycocoevalcap tokenizes with Stanford CoreNLP 3.4.1's `PTBTokenizer -preserveLines
//! -lowerCase` and then drops the tokens of its punctuation list. This is a hand-written
//! re-implementation of the parts of that lexer that survive the punctuation removal
//! (which characters join a word, which words keep a trailing period, clitic splitting,
//! bracket and quote normalisation), so that metrics need no Java. Behaviour was taken
//! from running the real jar on probe sentences (`scripts/metrics_reference.py` records
//! the jar's output for the committed cases in `tests/data/metrics/tokenizer_expected.json`).
//!
//! Known differences from the jar (rare in captions):
//! * context across captions: pycocoevalcap tokenizes all captions as one file, so e.g.
//!   "no." at the end of one caption keeps its period when the next caption starts with a
//!   digit; here every caption is tokenized on its own (as if followed by lower-case text);
//! * punctuation glued between words without spaces (`word?word`, `with$`, `etc.@with`,
//!   `n'tword`, `#well-known`), URLs, SGML-like `<tags>`, currency prefixes such as `US$`,
//!   and words glued to decimals (`v2.0`, `3.5mm`) are split differently: on 3,000 random
//!   strings of words with such glued punctuation, 358 tokenized differently, while a
//!   generated 800-id set of COCO-style captions (capitals, quotes, abbreviations,
//!   clitics, hyphens, trailing punctuation) tokenized and scored identically;
//! * the abbreviation list below was probed on common abbreviations and is not the
//!   lexer's full list.

/// Tokens pycocoevalcap removes after tokenizing. Brackets are not among them: the list
/// has `-LRB-` in upper case but `-lowerCase` has already turned it into `-lrb-`.
const REMOVED: [&str; 13] = [
    "''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";",
];

/// Abbreviations that keep their period in any letter case.
#[rustfmt::skip]
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "jr", "sr", "st", "ave", "blvd", "rd", "mt", "ft", "gen",
    "col", "sgt", "rev", "co", "corp", "ltd", "inc", "bros", "vs", "etc", "jan", "feb", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "tues", "wed",
    "thu", "thurs", "fri", "calif", "ala", "ariz", "colo", "conn", "fla", "ga", "ind", "kan",
    "ky", "md", "mich", "minn", "mo", "mont", "neb", "nev", "okla", "penn", "tenn", "va", "vt",
    "wis", "wyo", "dept", "est", "sq", "cf", "al", "capt", "cmdr", "cpl", "det", "esq", "gov",
    "hon", "lt", "maj", "messrs", "mlle", "mme", "msgr", "pvt", "rep", "reps", "sen", "sens",
    "supt", "univ", "assn", "assoc", "intl", "natl", "ste",
];

/// Abbreviations that keep their period only when capitalised (lower-case they are words).
const CAPITALISED_ABBREVIATIONS: &[&str] = &[
    "Ark", "Del", "Ill", "La", "Mass", "Miss", "Ore", "Pa", "Tex", "Wash",
];

/// Words the lexer splits in two (lower-cased form → parts).
const SPLIT_WORDS: &[(&str, &str, &str)] = &[
    ("cannot", "can", "not"),
    ("gonna", "gon", "na"),
    ("gotta", "got", "ta"),
    ("wanna", "wan", "na"),
    ("gimme", "gim", "me"),
    ("lemme", "lem", "me"),
];

/// Clitics split off the end of a word, longest first.
const CLITICS: &[&str] = &["n't", "'ll", "'re", "'ve", "'s", "'d", "'m"];

/// Words that may start with an apostrophe (lower case, apostrophe included).
const APOSTROPHE_WORDS: &[&str] = &["'cause", "'em", "'til", "'n'"];

/// Lower-cased tokens of one caption, punctuation removed, as pycocoevalcap's PTBTokenizer.
pub fn tokenize(caption: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    tokenize_with(caption, |token| tokens.push(token.to_string()));
    tokens
}

/// [`tokenize`] without allocating a vector: `emit` gets every token in order.
pub fn tokenize_with(caption: &str, mut emit: impl FnMut(&str)) {
    let text = normalize(caption);
    let mut chunks = text.split_whitespace().peekable();
    let mut raw = Vec::new();
    let mut chars = Vec::new();
    let mut lower_buf = String::new();
    while let Some(chunk) = chunks.next() {
        // Fast path, exact: a chunk of ASCII letters and digits is one word, or two for
        // the lexer's split words (cannot → can not); no other rule applies to it.
        if chunk.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let lower = if chunk.bytes().any(|b| b.is_ascii_uppercase()) {
                lower_buf.clear();
                lower_buf.push_str(chunk);
                lower_buf.make_ascii_lowercase();
                lower_buf.as_str()
            } else {
                chunk
            };
            match SPLIT_WORDS.iter().find(|(w, _, _)| *w == lower) {
                Some((_, a, b)) => {
                    emit(a);
                    emit(b);
                }
                None => emit(lower),
            }
            continue;
        }
        let next_starts_with_digit = chunks
            .peek()
            .is_some_and(|next| next.starts_with(|c: char| c.is_ascii_digit()));
        chars.clear();
        chars.extend(chunk.chars());
        raw.clear();
        split_chunk(&chars, next_starts_with_digit, &mut raw);
        for token in &raw {
            let lower = token.to_lowercase();
            if !REMOVED.contains(&lower.as_str()) {
                emit(&lower);
            }
        }
    }
}

/// Rewrites the characters the lexer normalises (typographic quotes, dashes, ellipsis,
/// fractions, some currency signs, unusual spaces) into their ASCII equivalents, padded
/// with spaces where the lexer makes them tokens of their own.
fn normalize(caption: &str) -> std::borrow::Cow<'_, str> {
    if caption.is_ascii() {
        return std::borrow::Cow::Borrowed(caption);
    }
    let mut out = String::with_capacity(caption.len() + 8);
    for c in caption.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' => out.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201F}' | '\u{00AB}' | '\u{00BB}' => out.push('"'),
            '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}' => out.push_str(" -- "),
            '\u{2026}' => out.push_str(" ... "),
            '\u{00BD}' => out.push_str(" 1/2 "),
            '\u{00BC}' => out.push_str(" 1/4 "),
            '\u{00BE}' => out.push_str(" 3/4 "),
            '\u{20AC}' => out.push_str(" $ "),
            '\u{00A3}' => out.push_str(" # "),
            '\u{00A2}' => out.push_str(" cents "),
            c if c.is_whitespace() || c == '\u{00A0}' => out.push(' '),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Splits one whitespace-free chunk into lexer tokens (before lower-casing and removal).
fn split_chunk(chunk: &[char], next_starts_with_digit: bool, tokens: &mut Vec<String>) {
    let n = chunk.len();
    let at = |i: usize| chunk.get(i).copied();
    let mut i = 0;
    while i < n {
        let c = chunk[i];
        let prev_is_word = i > 0 && chunk[i - 1].is_alphanumeric();
        let next = at(i + 1);
        let starts_number = matches!(c, '-' | '+' | '.')
            && !prev_is_word
            && next.is_some_and(|d| d.is_ascii_digit());
        let starts_tag = matches!(c, '#' | '@') && next.is_some_and(char::is_alphabetic);
        if c.is_alphanumeric() || starts_number || starts_tag {
            i = take_word(chunk, i, next_starts_with_digit, tokens);
        } else if c == '\'' {
            i = take_apostrophe(chunk, i, tokens);
        } else {
            i = take_punctuation(chunk, i, tokens);
        }
    }
}

/// A word from `start`: alphanumerics joined by the connectors the lexer keeps inside
/// words, then its trailing period if it is an abbreviation, then clitic splitting.
fn take_word(
    chunk: &[char],
    start: usize,
    next_is_number: bool,
    tokens: &mut Vec<String>,
) -> usize {
    let n = chunk.len();
    let mut j = start + 1;
    while j < n {
        let c = chunk[j];
        if c.is_alphanumeric() {
            j += 1;
            continue;
        }
        let prev = chunk[j - 1];
        // ol' keeps its apostrophe
        if c == '\'' && j == start + 2 && chunk.get(j + 1).is_none_or(|c| !c.is_alphanumeric()) {
            let before: String = chunk[start..j].iter().collect();
            if before.eq_ignore_ascii_case("ol") {
                j += 1;
                break;
            }
        }
        let Some(&next) = chunk.get(j + 1) else { break };
        let joins = match c {
            // a clitic ends the word: cat's-eye → cat 's - eye, can't/boys → ca n't / boys
            _ if c != '\'' && ends_with_clitic(&chunk[start..j]) => false,
            '-' | '.' | '/' | '@' => next.is_alphanumeric(),
            '\'' => next.is_alphabetic() && apostrophe_joins(chunk, start, j),
            ',' | ':' => prev.is_ascii_digit() && next.is_ascii_digit(),
            '&' => prev.is_uppercase() && next.is_uppercase(),
            '!' | '?' => prev.is_alphabetic() && next.is_alphabetic(),
            _ => false,
        };
        if !joins || !prev.is_alphanumeric() {
            break;
        }
        j += 1;
    }
    let mut word: String = chunk[start..j].iter().collect();
    if chunk.get(j) == Some(&'.') && keeps_period(&word, next_is_number && j + 1 == n) {
        word.push('.');
        j += 1;
    }
    push_word(&word, tokens);
    j
}

/// Whether the apostrophe at `at` stays inside the word that began at `start`: before a
/// clitic (dog's, don't, cont'd, rock'n'roll), after the name prefixes d' l' o' (and y',
/// split later), or in a few contracted words; elsewhere it is a quote (gov't → gov ' t).
fn apostrophe_joins(chunk: &[char], start: usize, at: usize) -> bool {
    let before: String = chunk[start..at].iter().collect::<String>().to_lowercase();
    let rest_end = (at + 1..chunk.len())
        .find(|&k| !chunk[k].is_alphanumeric())
        .unwrap_or(chunk.len());
    let rest: String = chunk[at + 1..rest_end]
        .iter()
        .collect::<String>()
        .to_lowercase();
    let clitic = matches!(rest.as_str(), "s" | "d" | "m" | "re" | "ve" | "ll")
        || (rest == "t" && before.ends_with('n'))
        || before.ends_with("'n")
        || (rest == "n"
            && chunk.get(rest_end).is_none_or(|&c| {
                c != '\'' || chunk.get(rest_end + 1).is_some_and(|c| c.is_alphabetic())
            }));
    if clitic {
        return true;
    }
    let whole = format!("{before}'{rest}");
    matches!(before.as_str(), "d" | "l" | "o" | "y") || CONTRACTED_WORDS.contains(&whole.as_str())
}

/// Words the lexer keeps whole although their apostrophe is not a clitic's.
const CONTRACTED_WORDS: &[&str] = &[
    "ma'am", "c'mon", "ne'er", "o'er", "li'l", "nat'l", "shi'ite", "qu'est", "d'ye",
];

fn ends_with_clitic(word: &[char]) -> bool {
    let lower: String = word.iter().collect::<String>().to_lowercase();
    CLITICS
        .iter()
        .any(|c| lower.len() > c.len() && lower.ends_with(c))
}

/// Whether the lexer keeps a period after `word` as part of it.
fn keeps_period(word: &str, before_number: bool) -> bool {
    let mut chars = word.chars();
    let first = chars.next();
    if word.chars().count() == 1 {
        return first.is_some_and(char::is_alphabetic);
    }
    // acronyms and abbreviations with inner periods: u.s, a.m, ph.d, e.g
    if word.contains('.') {
        return word.chars().all(|c| c.is_alphabetic() || c == '.');
    }
    let lower = word.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
        || (CAPITALISED_ABBREVIATIONS.contains(&word)
            && word.chars().skip(1).all(char::is_lowercase))
        || (before_number && lower == "no")
}

/// Pushes a word, split into the lexer's parts (clitics, `cannot`, `gonna`, ...).
fn push_word(word: &str, tokens: &mut Vec<String>) {
    let lower = word.to_lowercase();
    if let Some((_, a, b)) = SPLIT_WORDS.iter().find(|(w, _, _)| *w == lower) {
        tokens.push((*a).to_string());
        tokens.push((*b).to_string());
        return;
    }
    // rock'n'roll → rock 'n' roll
    if let Some(pos) = lower.find("'n'")
        && pos > 0
        && pos + 3 < lower.len()
    {
        push_word(&word[..pos], tokens);
        tokens.push(word[pos..pos + 3].to_string());
        push_word(&word[pos + 3..], tokens);
        return;
    }
    // y'all, y'know → y' all
    if lower.starts_with("y'") && lower.len() > 2 {
        tokens.push(word[..2].to_string());
        push_word(&word[2..], tokens);
        return;
    }
    let mut suffixes = Vec::new();
    let mut rest = word;
    loop {
        let lower_rest = rest.to_lowercase();
        let Some(clitic) = CLITICS
            .iter()
            .find(|c| lower_rest.len() > c.len() && lower_rest.ends_with(*c))
        else {
            break;
        };
        // byte lengths agree: clitics are ASCII and to_lowercase keeps ASCII lengths
        let cut = rest.len() - clitic.len();
        if !rest.is_char_boundary(cut) {
            break;
        }
        suffixes.push(rest[cut..].to_string());
        rest = &rest[..cut];
    }
    // more'n → more 'n
    let lower_rest = rest.to_lowercase();
    if lower_rest.len() > 2 && lower_rest.ends_with("'n") {
        let cut = rest.len() - 2;
        tokens.push(rest[..cut].to_string());
        tokens.push(rest[cut..].to_string());
    } else {
        tokens.push(rest.to_string());
    }
    tokens.extend(suffixes.into_iter().rev());
}

/// An apostrophe that is not inside a word: a clitic on its own ('s), one of the words
/// that start with an apostrophe ('cause, '90s, 'tis), or a quote mark.
fn take_apostrophe(chunk: &[char], start: usize, tokens: &mut Vec<String>) -> usize {
    let n = chunk.len();
    let mut end = start + 1;
    while end < n && (chunk[end].is_alphanumeric() || (chunk[end] == '\'' && end + 1 == n)) {
        end += 1;
    }
    let word: String = chunk[start..end].iter().collect();
    let lower = word.to_lowercase();
    let bytes = lower.as_bytes();
    // '90s, '11 (as in 5'11): two digits; other numbers lose the apostrophe
    let digits = bytes[1..].strip_suffix(b"s").unwrap_or(&bytes[1..]);
    let is_year_or_number = digits.len() == 2
        && digits.iter().all(u8::is_ascii_digit)
        && !matches!(chunk.get(end), Some(',' | '.'));
    if end > start + 1 {
        if APOSTROPHE_WORDS.contains(&lower.as_str())
            || is_year_or_number
            || CLITICS.iter().any(|c| c.starts_with('\'') && *c == lower)
        {
            tokens.push(word);
            return end;
        }
        // a clitic glued to a number: 's5th → 's 5th
        if let Some(clitic) = CLITICS.iter().filter(|c| c.starts_with('\'')).find(|c| {
            lower.starts_with(*c) && lower[c.len()..].starts_with(|d: char| d.is_ascii_digit())
        }) {
            let cut = clitic.chars().count();
            tokens.push(chunk[start..start + cut].iter().collect());
            return start + cut;
        }
        if lower == "'tis" || lower == "'twas" {
            tokens.push(word[..2].to_string());
            tokens.push(word[2..].to_string());
            return end;
        }
    }
    tokens.push("'".to_string());
    start + 1
}

/// Punctuation: runs of `!`/`?`, dashes and dots become one token each; brackets become
/// the PTB escapes; anything else is a token of its own.
fn take_punctuation(chunk: &[char], start: usize, tokens: &mut Vec<String>) -> usize {
    let c = chunk[start];
    let run_end = |pred: &dyn Fn(char) -> bool| {
        let mut e = start + 1;
        while e < chunk.len() && pred(chunk[e]) {
            e += 1;
        }
        e
    };
    let (token, end): (String, usize) = match c {
        '!' | '?' => {
            let e = run_end(&|d| d == '!' || d == '?');
            (chunk[start..e].iter().collect(), e)
        }
        '-' => {
            let e = run_end(&|d| d == '-');
            (if e - start == 1 { "-" } else { "--" }.to_string(), e)
        }
        '.' => {
            let e = run_end(&|d| d == '.');
            (
                if e - start >= 3 { "..." } else { "." }.to_string(),
                if e - start >= 3 { e } else { start + 1 },
            )
        }
        ':' | ';' | '=' if emoticon_len(&chunk[start..]) > 0 => {
            let len = emoticon_len(&chunk[start..]);
            let token = chunk[start..start + len]
                .iter()
                .map(|&c| match c {
                    '(' => "-LRB-".to_string(),
                    ')' => "-RRB-".to_string(),
                    c => c.to_string(),
                })
                .collect();
            (token, start + len)
        }
        '(' => ("-LRB-".to_string(), start + 1),
        ')' => ("-RRB-".to_string(), start + 1),
        '[' => ("-LSB-".to_string(), start + 1),
        ']' => ("-RSB-".to_string(), start + 1),
        '{' => ("-LCB-".to_string(), start + 1),
        '}' => ("-RCB-".to_string(), start + 1),
        '"' => ("''".to_string(), start + 1),
        '`' => ("`".to_string(), start + 1),
        _ => (c.to_string(), start + 1),
    };
    tokens.push(token);
    end
}

/// Length of the emoticon the lexer keeps as one token at the start of `s` (0 if none):
/// `:)` `:-(` `;)` `=)` `:')` `:]` `:D` `:-D` `:P` `:-P`.
fn emoticon_len(s: &[char]) -> usize {
    let ends_word = |i: usize| s.get(i).is_none_or(|c| !c.is_alphanumeric());
    match (s.get(1), s.get(2)) {
        (Some('(' | ')' | '[' | ']'), _) => 2,
        (Some('-' | '\''), Some('(' | ')')) => 3,
        (Some('D' | 'P' | 'p'), _) if s[0] == ':' && ends_word(2) => 2,
        (Some('-'), Some('D' | 'P' | 'p')) if s[0] == ':' && ends_word(3) => 3,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::tokenize;

    fn tok(s: &str) -> String {
        tokenize(s).join(" ")
    }

    #[test]
    fn clitics_and_special_words() {
        assert_eq!(
            tok("He can't, won't; it's DOG's"),
            "he ca n't wo n't it 's dog 's"
        );
        assert_eq!(
            tok("wouldn't've cannot gonna"),
            "would n't 've can not gon na"
        );
    }
}
