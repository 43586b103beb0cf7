//! Why a set-up, login or change was refused: what the owner's pages tell the user.

/// Why a set-up, login or change was refused; what the page tells the user.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AuthError {
    WrongCode,
    WrongPassword,
    WeakPassword(String),
    NotSetUp,
    AlreadySetUp,
    Busy,
    /// A setting the device cannot take, and why (a certificate that does not parse).
    Refused(String),
    Storage(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::WrongCode => f.write_str("That set-up code is not this device's."),
            AuthError::WrongPassword => f.write_str("Wrong password."),
            AuthError::WeakPassword(why) => f.write_str(why),
            AuthError::NotSetUp => f.write_str("This device has no owner yet: set it up first."),
            AuthError::AlreadySetUp => f.write_str("This device is set up already: log in."),
            AuthError::Busy => f.write_str("Too many logins at once: try again in a moment."),
            AuthError::Refused(why) => f.write_str(why),
            AuthError::Storage(why) => write!(f, "The device could not read or save its settings: {why}"),
        }
    }
}

impl std::error::Error for AuthError {}
