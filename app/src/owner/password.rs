//! What the owner types: the password and its rules, and the one-time set-up code.
//!
//! Password rules follow NIST SP 800-63B-4 for a password used alone: at least 15
//! characters, at most 256, no composition rules, and none of a list of common passwords
//! or of repeats and runs; the set-up code cannot be kept as the password.

use ring::rand::{SecureRandom, SystemRandom};

use super::common_passwords;
use super::error::AuthError;

pub(super) const MIN_PASSWORD: usize = 15;
pub(super) const MAX_PASSWORD: usize = 256;

/// The rules; `code` is the set-up code, which must not become the password.
pub(super) fn check_password(password: &str, code: Option<&str>) -> Result<(), AuthError> {
    let weak = |why: &str| Err(AuthError::WeakPassword(why.to_owned()));
    let length = password.chars().count();
    if length < MIN_PASSWORD {
        return weak(&format!("Use at least {MIN_PASSWORD} characters: a few words make a strong password."));
    }
    if length > MAX_PASSWORD {
        return weak(&format!("Use at most {MAX_PASSWORD} characters."));
    }
    if common_passwords::is_common(password) {
        return weak("That password is on lists of common passwords, or one dressed up: choose another.");
    }
    let chars: Vec<char> = password.to_lowercase().chars().collect();
    let distinct = chars.iter().collect::<std::collections::HashSet<_>>().len();
    let run = chars.windows(2).all(|w| (w[1] as i32 - w[0] as i32).abs() == 1);
    if distinct <= 3 || run {
        return weak("That password is a repeat or a run of characters: choose another.");
    }
    if code.is_some_and(|code| normalise_code(code) == normalise_code(password)) {
        return weak("The set-up code cannot be the password.");
    }
    Ok(())
}

/// 16 characters from Crockford's base 32 (no I, L, O, U), in groups of four: 80 bits,
/// typeable from a label or a console.
pub(super) fn setup_code(random: &SystemRandom) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut raw = [0u8; 16];
    random.fill(&mut raw).expect("the kernel's random numbers");
    let chars: Vec<char> = raw.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// How a code is compared: case, dashes and spaces do not matter, nor the letters people
/// confuse with digits.
pub(super) fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_rules() {
        assert!(check_password("three words only", None).is_ok());
        assert!(matches!(check_password("short", None), Err(AuthError::WeakPassword(_))));
        assert!(matches!(check_password("PasswordPassword", None), Err(AuthError::WeakPassword(_))));
        assert!(matches!(check_password("aaaaaaaaaaaaaaaaaaa", None), Err(AuthError::WeakPassword(_))));
        assert!(matches!(check_password("abcdefghijklmnopq", None), Err(AuthError::WeakPassword(_))));
        let code = "ABCD-EFGH-JKMN-PQRS";
        assert!(matches!(check_password("abcdefghjkmnpqrs", Some(code)), Err(AuthError::WeakPassword(_))));
        assert!(check_password(&"x y ".repeat(100), None).is_err());
        // A common password dressed up to pass the length rule (the list: common_passwords.rs).
        assert!(matches!(check_password("password1234567", None), Err(AuthError::WeakPassword(_))));
        assert!(matches!(check_password("P@ssw0rd12345678", None), Err(AuthError::WeakPassword(_))));
    }

    /// Why `password` is refused, or None.
    fn weakness(password: &str) -> Option<String> {
        match check_password(password, None) {
            Ok(()) => None,
            Err(AuthError::WeakPassword(why)) => Some(why),
            Err(e) => panic!("{password}: {e}"),
        }
    }

    #[test]
    fn a_password_has_15_to_256_characters_counted_as_typed() {
        // 'ü' is two bytes and one character.
        assert_eq!(weakness("plüm kettle 4x9"), None);
        assert!(weakness("plüm kettle 4x").unwrap().contains("at least 15"));
        let long = "plum kettle under the stairs ".repeat(9);
        assert_eq!(weakness(&long[..256]), None);
        assert!(weakness(&long[..257]).unwrap().contains("at most 256"));
    }

    #[test]
    fn a_repeat_or_a_run_of_characters_is_refused_either_way_and_a_mere_rise_is_not() {
        for run in ["0123456789:;<=>?", "?>=<;:9876543210", "xq xq xq xq xq xq"] {
            assert!(weakness(run).unwrap().contains("a repeat or a run"), "{run}");
        }
        assert_eq!(weakness("ACEGIKMOQSUWY[]"), None, "rising by two is no run");
    }

    #[test]
    fn set_up_codes_have_80_bits_and_forgive_how_they_are_typed() {
        let code = setup_code(&SystemRandom::new());
        assert_eq!(code.len(), 19, "{code}");
        assert_ne!(code, setup_code(&SystemRandom::new()));
        assert_eq!(normalise_code("abc0-i1l "), normalise_code("ABCO-111"));
    }
}
