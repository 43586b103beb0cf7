//! Configuration: built-in defaults, then the TOML file, then `PORTICO_*` environment
//! variables, then command-line flags; each later source overrides the earlier ones.
//!
//! Every key has one name. The flag is the name with dashes (`--drain-timeout`), the
//! environment variable is the name upper-cased behind `PORTICO_` (`PORTICO_DRAIN_TIMEOUT`).

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod flat_toml;

use flat_toml::Value;
use tracing::level_filters::LevelFilter;

/// Where the config file is read from unless `--config` or `PORTICO_CONFIG` says otherwise.
pub(crate) const DEFAULT_CONFIG_PATH: &str = "/etc/portico/portico.toml";

/// The version portico reports: the packager's `PORTICO_VERSION` at build time, if set.
pub(crate) const VERSION: &str = match option_env!("PORTICO_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// A config key, declared once: its name (as in the file; `--name-with-dashes` as a flag,
/// `PORTICO_NAME` in the environment), the form of its value for --help, its default
/// (a value as the environment would give it, applied to build `Config::default()`), what
/// it means, and how it is set.
struct Key {
    name: &'static str,
    /// The value's form in --help ("DURATION"); "" for a switch, which alone means true.
    value: &'static str,
    default: &'static str,
    help: &'static str,
    set: fn(&mut Config, Raw) -> Result<(), String>,
}

const KEYS: &[Key] = &[
    Key {
        name: "listen",
        value: "ADDR",
        default: "127.0.0.1:8080",
        help: "address to bind when no socket is passed: 127.0.0.1:8080, [::]:80 or a Unix socket \
               path, behind https:// for HTTPS (https://[::]:443); repeat for several",
        set: |c, v| {
            c.listen = v.list()?.iter().map(|s| parse_listen(s)).collect::<Result<_, _>>()?;
            Ok(())
        },
    },
    Key {
        name: "require_activation",
        value: "",
        default: "false",
        help: "refuse to start unless systemd passes the sockets",
        set: |c, v| {
            c.require_activation = v.flag()?;
            Ok(())
        },
    },
    Key {
        name: "user",
        value: "NAME",
        default: "",
        help: "started as root: bind, then run as NAME (nobody if none is named)",
        set: |c, v| {
            c.user = nonempty(v.text()?);
            Ok(())
        },
    },
    Key {
        name: "allow_root",
        value: "",
        default: "false",
        help: "allow serving as root",
        set: |c, v| {
            c.allow_root = v.flag()?;
            Ok(())
        },
    },
    Key {
        name: "workers",
        value: "N",
        default: "0",
        help: "runtime threads; 0: the CPUs available, within the cgroup's task limit",
        set: |c, v| {
            let n = v.count()?;
            c.workers = (n > 0).then_some(n);
            Ok(())
        },
    },
    Key {
        name: "drain_timeout",
        value: "DURATION",
        default: "10s",
        help: "time in-flight requests get after SIGTERM",
        set: |c, v| {
            c.drain_timeout = v.duration()?;
            Ok(())
        },
    },
    Key {
        name: "exit_idle_after",
        value: "DURATION",
        default: "0",
        help: "exit after this long with no connection; 0: never",
        set: |c, v| {
            let after = v.duration()?;
            c.exit_idle_after = (!after.is_zero()).then_some(after);
            Ok(())
        },
    },
    Key {
        name: "header_read_timeout",
        value: "DURATION",
        default: "10s",
        help: "time to send a request's head or body (or finish the TLS handshake)",
        set: |c, v| {
            c.header_read_timeout = v.duration()?;
            Ok(())
        },
    },
    Key {
        name: "keep_alive_timeout",
        value: "DURATION",
        default: "5s",
        help: "time idle between requests",
        set: |c, v| {
            c.keep_alive_timeout = v.duration()?;
            Ok(())
        },
    },
    Key {
        name: "max_connections",
        value: "N",
        default: "256",
        help: "open connections at most; at the limit the oldest idle one makes room",
        set: |c, v| {
            c.max_connections = v.count()?;
            Ok(())
        },
    },
    Key {
        name: "max_header_bytes",
        value: "N",
        default: "8192",
        help: "largest request head; larger ones get 431",
        set: |c, v| {
            c.max_header_bytes = v.count()?;
            Ok(())
        },
    },
    Key {
        name: "max_body_bytes",
        value: "N",
        default: "65536",
        help: "largest request body, declared or chunked; larger ones get 413",
        set: |c, v| {
            c.max_body_bytes = v.count()?;
            Ok(())
        },
    },
    Key {
        name: "log_level",
        value: "LEVEL",
        default: "info",
        help: "error, warn, info, debug or trace",
        set: |c, v| {
            let level = v.text()?;
            c.log_level = level
                .parse()
                .map_err(|_| format!("unknown log level {level:?}: use error, warn, info, debug or trace"))?;
            Ok(())
        },
    },
    Key {
        name: "tls_certificate",
        value: "PATH",
        default: "",
        help: "HTTPS certificate chain (PEM), with tls_key; none: the systemd credential \
               tls.crt, else one generated at first start",
        set: |c, v| {
            c.tls_certificate = nonempty(v.text()?).map(PathBuf::from);
            Ok(())
        },
    },
    Key {
        name: "tls_key",
        value: "PATH",
        default: "",
        help: "its private key (PEM); none: the credential tls.key",
        set: |c, v| {
            c.tls_key = nonempty(v.text()?).map(PathBuf::from);
            Ok(())
        },
    },
    Key {
        name: "state_directory",
        value: "PATH",
        default: DEFAULT_STATE_DIRECTORY,
        help: "where the owner's login and settings and the certificates are kept; under systemd, $STATE_DIRECTORY",
        set: |c, v| {
            c.state_directory =
                nonempty(v.text()?).map(PathBuf::from).ok_or("expected a directory, found \"\"")?;
            Ok(())
        },
    },
    Key {
        name: "hsts_max_age",
        value: "DURATION",
        default: "0",
        help: "send Strict-Transport-Security over HTTPS; 0: none",
        set: |c, v| {
            c.hsts_max_age = v.duration()?;
            Ok(())
        },
    },
    Key {
        name: "session_idle_timeout",
        value: "DURATION",
        default: "15m",
        help: "the owner's login ends after this long without a request",
        set: |c, v| {
            c.session_idle_timeout = v.duration()?;
            Ok(())
        },
    },
    Key {
        name: "session_lifetime",
        value: "DURATION",
        default: "12h",
        help: "the owner's login ends this long after it began in any case",
        set: |c, v| {
            c.session_lifetime = v.duration()?;
            Ok(())
        },
    },
    Key {
        name: "metrics_token",
        value: "TOKEN",
        default: "",
        help: "the bearer token /metrics wants, over HTTPS; none: the credential \
               metrics-token, else /metrics is off",
        set: |c, v| {
            let token = v.text()?;
            if !token.is_empty() && token.len() < MIN_TOKEN_LENGTH {
                return Err(format!(
                    "a token of {} characters is too easy to guess: use at least \
                     {MIN_TOKEN_LENGTH} random ones (e.g. `openssl rand -hex 24`)",
                    token.len()
                ));
            }
            c.metrics_token = nonempty(token);
            Ok(())
        },
    },
    Key {
        name: "metrics_public",
        value: "",
        default: "false",
        help: "serve /metrics to anyone",
        set: |c, v| {
            c.metrics_public = v.flag()?;
            Ok(())
        },
    },
    Key {
        name: "update_status",
        value: "PATH",
        default: "/var/lib/portico-update/status.json",
        help: "the report portico-update writes, shown to the owner and in /metrics; \"\": \
               this device has no updater",
        set: |c, v| {
            c.update_status = nonempty(v.text()?).map(PathBuf::from);
            match &c.update_status {
                Some(path) if path.is_relative() => {
                    Err(format!("expected an absolute path, found {:?}", path.display().to_string()))
                }
                _ => Ok(()),
            }
        },
    },
    Key {
        name: "access_log",
        value: "",
        default: "false",
        help: "log each request (method, path, status, bytes, time, client) at the journal's \
               debug priority",
        set: |c, v| {
            c.access_log = v.flag()?;
            Ok(())
        },
    },
];

fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// A setting a binary built on portico declares for its own pages: one more key of the
/// same table, set the same ways (the config file, `PORTICO_<NAME>`, `--name`) and listed
/// by `--help`. Its value is text; the page reads it with `Device::setting`.
#[derive(Clone, Debug)]
pub struct Setting {
    name: &'static str,
    value: &'static str,
    default: &'static str,
    help: &'static str,
}

impl Setting {
    /// `name` as in the config file (lower case, digits, `_`), the form of its value for
    /// `--help` (`"TEXT"`), its default, and one line on what it means.
    pub const fn new(
        name: &'static str,
        value: &'static str,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        Setting { name, value, default, help }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn default(&self) -> &'static str {
        self.default
    }
}

/// Refuses a declared setting whose name is not a key's, or is portico's own or declared
/// twice: a mistake of the binary's author, told at its first start.
fn check_declared(declared: &[Setting]) -> Result<(), ConfigError> {
    for (i, setting) in declared.iter().enumerate() {
        let name = setting.name;
        let shape = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && name.as_bytes()[0].is_ascii_lowercase();
        if !shape {
            return Err(ConfigError(format!(
                "the setting {name:?} this binary declares is no key name: use lower case, digits and _"
            )));
        }
        if key(name).is_some() || declared[..i].iter().any(|other| other.name == name) {
            return Err(ConfigError(format!(
                "the setting `{name}` this binary declares is portico's own or declared twice: rename it"
            )));
        }
    }
    Ok(())
}

/// An empty value means "not set".
fn nonempty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// The prefix that marks a `--listen` address as HTTPS.
pub(crate) const HTTPS_PREFIX: &str = "https://";

/// An address portico binds itself when systemd passes no socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A `--listen` entry: the address, and whether it speaks HTTPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listen {
    pub addr: ListenAddr,
    pub https: bool,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => addr.fmt(f),
            ListenAddr::Unix(path) => path.display().fmt(f),
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.https {
            f.write_str(HTTPS_PREFIX)?;
        }
        self.addr.fmt(f)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Addresses to bind when started by hand (no sockets from systemd).
    pub listen: Vec<Listen>,
    /// Refuse to start unless systemd passed the listening sockets.
    pub require_activation: bool,
    /// Started as root: bind, then switch to this user before serving.
    pub user: Option<String>,
    /// Allow serving as root (without `user`). Off: portico refuses.
    pub allow_root: bool,
    /// Runtime worker threads; 1 runs everything on the main thread. Default: the CPUs
    /// available, within the cgroup's task limit (threads::workers).
    pub workers: Option<usize>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    /// Exit after this long without any open connection (for on-demand start).
    pub exit_idle_after: Option<Duration>,
    /// How long a client may take to send a request's head, from its first byte.
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request in progress and none arriving.
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub log_level: LevelFilter,
    /// The HTTPS certificate chain and its key (PEM); unset: a credential or a generated one.
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Where portico keeps what it generates (its certificate).
    pub state_directory: PathBuf,
    /// Strict-Transport-Security on HTTPS responses; zero sends none.
    pub hsts_max_age: Duration,
    pub session_idle_timeout: Duration,
    pub session_lifetime: Duration,
    /// The bearer token a scraper of /metrics must present.
    pub metrics_token: Option<String>,
    /// Serve /metrics to anyone.
    pub metrics_public: bool,
    /// The updater's report; none where the device has no updater.
    pub update_status: Option<PathBuf>,
    /// One log line per request.
    pub access_log: bool,
    /// The settings the binary declared (`Setting`): name and value. A few at most, so a
    /// list: a map's code would cost the binary more than its lookups ever take.
    pub settings: Vec<(&'static str, String)>,
}

/// The shortest metrics token accepted: guessing one must be hopeless.
pub(crate) const MIN_TOKEN_LENGTH: usize = 16;

impl Default for Config {
    /// Every key's declared default, applied as the environment would give it.
    fn default() -> Self {
        let mut config = Config {
            listen: Vec::new(),
            require_activation: false,
            user: None,
            allow_root: false,
            workers: None,
            drain_timeout: Duration::ZERO,
            exit_idle_after: None,
            header_read_timeout: Duration::ZERO,
            keep_alive_timeout: Duration::ZERO,
            max_connections: 0,
            max_header_bytes: 0,
            max_body_bytes: 0,
            log_level: LevelFilter::INFO,
            tls_certificate: None,
            tls_key: None,
            state_directory: PathBuf::new(),
            hsts_max_age: Duration::ZERO,
            session_idle_timeout: Duration::ZERO,
            session_lifetime: Duration::ZERO,
            metrics_token: None,
            metrics_public: false,
            update_status: None,
            access_log: false,
            settings: Vec::new(),
        };
        for key in KEYS {
            // A default that does not parse is a bug that every test run catches.
            (key.set)(&mut config, Raw::Text(key.default.to_owned()))
                .unwrap_or_else(|e| panic!("default of {}: {e}", key.name));
        }
        config
    }
}

/// A systemd credential's first line (LoadCredential=), if the unit passes it.
pub(crate) fn credential(name: &str) -> Result<Option<String>, ConfigError> {
    let Some(path) =
        std::env::var_os("CREDENTIALS_DIRECTORY").map(|dir| std::path::Path::new(&dir).join(name))
    else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.lines().next().unwrap_or("").trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError(format!("cannot read the credential {}: {e}", path.display()))),
    }
}

/// Where portico keeps its state when systemd names no StateDirectory=.
pub(crate) const DEFAULT_STATE_DIRECTORY: &str = "/var/lib/portico";

/// What the command line asked for.
pub(crate) enum Command {
    Serve(Box<Config>),
    /// `portico reset-owner`: clear the owner's password and print a new set-up code.
    ResetOwner(Box<Config>),
    Help,
    Version,
}

/// A configuration problem, already phrased for the user: where, which key, what is wrong.
#[derive(Debug)]
pub(crate) struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The --help text, made from the key table.
pub(crate) fn help(program: &str, declared: &[Setting]) -> String {
    let what = match program {
        "portico" => {
            "portico: a socket-activated status page, JSON API, health check and metrics for a device"
        }
        _ => &format!("{program}: a device's web interface, built on portico {VERSION}"),
    };
    let mut help = format!(
        "{what}

Usage: {program} [OPTIONS]
       {program} reset-owner [--state-directory PATH]   (as root, on the device: clears the
           owner's password and prints a new set-up code)

Under systemd, {program} serves the sockets that {program}.socket and {program}-https.socket
pass it. Started by hand, it binds the --listen addresses itself.

Options (each also a config-file key, with _ for -, and a PORTICO_<KEY> variable):
  -c, --config PATH             config file [default: {DEFAULT_CONFIG_PATH}]
"
    );
    let own = declared.iter().map(|s| (s.name, s.value, s.default, s.help));
    for (name, value, default, text) in KEYS.iter().map(|k| (k.name, k.value, k.default, k.help)).chain(own) {
        let flag = format!("--{} {}", name.replace('_', "-"), value);
        let short = if name == "listen" { "-l," } else { "   " };
        help.push_str(&format!("  {short} {flag:<26}"));
        if flag.len() >= 26 {
            help.push_str(&format!("\n{:32}", ""));
        }
        // A switch's default is always off; the others say theirs, kept on one line.
        let default = (!default.is_empty() && !value.is_empty()).then(|| format!("[default: {default}]"));
        wrap_into(&mut help, text.split_whitespace().chain(default.as_deref()), 32, 92);
    }
    help.push_str(
        "  -h, --help                    print this help
  -V, --version                 print the version

A DURATION is a number with a unit: 500ms, 10s, 5m, 1h.

These are the image's settings. The owner's (password, label, who may see the status
page, an uploaded certificate) are set on https://<device>/settings and kept in the state
directory.
",
    );
    help
}

/// Appends `words` wrapped at `width` columns, continuation lines indented by `indent`.
fn wrap_into<'a>(out: &mut String, words: impl Iterator<Item = &'a str>, indent: usize, width: usize) {
    let mut column = indent;
    for (i, word) in words.enumerate() {
        if i > 0 && column + 1 + word.len() > width {
            out.push_str(&format!("\n{:indent$}", ""));
            column = indent;
        } else if i > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push('\n');
}

/// Reads the command line, the environment and the config file, in that order of precedence.
pub(crate) fn load(
    args: impl IntoIterator<Item = OsString>,
    declared: &[Setting],
) -> Result<Command, ConfigError> {
    check_declared(declared)?;
    let flags = match parse_flags(args, declared)? {
        ParsedFlags::Help => return Ok(Command::Help),
        ParsedFlags::Version => return Ok(Command::Version),
        ParsedFlags::Settings { reset_owner, config_path, settings } => (reset_owner, config_path, settings),
    };
    let (reset_owner, config_path, flag_settings) = flags;

    let mut config = Config {
        settings: declared.iter().map(|s| (s.name, s.default.to_owned())).collect(),
        ..Config::default()
    };
    // systemd names the unit's StateDirectory= (a list, if it names several).
    if let Some(dir) =
        std::env::var_os("STATE_DIRECTORY").and_then(|dirs| std::env::split_paths(&dirs).next())
    {
        config.state_directory = dir;
    }

    let explicit_path = config_path.or_else(|| std::env::var_os("PORTICO_CONFIG").map(PathBuf::from));
    let path = explicit_path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    match std::fs::read_to_string(&path) {
        Ok(text) => config.apply_file(&path, &text)?,
        // The default file is optional; one the user named is not.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit_path.is_none() => {}
        Err(e) => {
            return Err(ConfigError(format!("cannot read config file {}: {e}", path.display())));
        }
    }

    for name in KEYS.iter().map(|key| key.name).chain(declared.iter().map(|s| s.name)) {
        let var = format!("PORTICO_{}", name.to_ascii_uppercase());
        if let Some(value) = std::env::var_os(&var) {
            let value = value
                .into_string()
                .map_err(|_| ConfigError(format!("environment variable {var}: not valid UTF-8")))?;
            config
                .set(name, Raw::Text(value))
                .map_err(|e| ConfigError(format!("environment variable {var}: {e}")))?;
        }
    }

    for (key, value) in flag_settings {
        config.set(&key, value).map_err(|e| ConfigError(format!("--{}: {e}", key.replace('_', "-"))))?;
    }

    config.check()?;
    Ok(match reset_owner {
        true => Command::ResetOwner(Box::new(config)),
        false => Command::Serve(Box::new(config)),
    })
}

/// A value before it is checked against its key: text (flags, environment) or the file's.
enum Raw {
    Text(String),
    File(Value),
    /// Several `--listen` flags, in order.
    List(Vec<String>),
}

impl Raw {
    fn describe(&self) -> String {
        match self {
            Raw::Text(text) => format!("{text:?}"),
            Raw::File(value) => value.to_string(),
            Raw::List(items) => format!("{items:?}"),
        }
    }

    fn text(self) -> Result<String, String> {
        match self {
            Raw::Text(text) => Ok(text),
            Raw::File(Value::String(text)) => Ok(text),
            other => Err(format!("expected a string, found {}", other.describe())),
        }
    }

    /// A declared setting's value: any single value, as text.
    fn scalar(self) -> Result<String, String> {
        match self {
            Raw::Text(text) | Raw::File(Value::String(text)) => Ok(text),
            Raw::File(Value::Integer(n)) => Ok(n.to_string()),
            Raw::File(Value::Boolean(b)) => Ok(b.to_string()),
            other => Err(format!("expected one value, found {}", other.describe())),
        }
    }

    fn flag(self) -> Result<bool, String> {
        match self {
            Raw::File(Value::Boolean(b)) => Ok(b),
            Raw::Text(text) => match text.as_str() {
                "true" | "yes" | "1" | "on" => Ok(true),
                "false" | "no" | "0" | "off" => Ok(false),
                _ => Err(format!("expected true or false, found {text:?}")),
            },
            other => Err(format!("expected true or false, found {}", other.describe())),
        }
    }

    fn count(self) -> Result<usize, String> {
        let found = self.describe();
        let n = match self {
            Raw::File(Value::Integer(n)) => usize::try_from(n).ok(),
            Raw::Text(text) => text.parse().ok(),
            _ => None,
        };
        n.ok_or_else(|| format!("expected a whole number, found {found}"))
    }

    fn duration(self) -> Result<Duration, String> {
        let found = self.describe();
        let text = self
            .text()
            .map_err(|_| format!("expected a duration such as \"10s\" or \"500ms\", found {found}"))?;
        parse_duration(&text)
    }

    fn list(self) -> Result<Vec<String>, String> {
        match self {
            Raw::List(items) => Ok(items),
            Raw::Text(text) => Ok(text.split(',').map(|s| s.trim().to_owned()).collect()),
            Raw::File(Value::String(text)) => Ok(vec![text]),
            Raw::File(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text),
                    other => Err(format!("expected a list of addresses, found {other} in it")),
                })
                .collect(),
            Raw::File(other) => Err(format!("expected a list of addresses, found {other}")),
        }
    }
}

impl Config {
    fn apply_file(&mut self, path: &std::path::Path, text: &str) -> Result<(), ConfigError> {
        let entries = flat_toml::parse(text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        for entry in entries {
            self.set(&entry.key, Raw::File(entry.value)).map_err(|e| {
                ConfigError(format!("{}: line {}: key `{}`: {e}", path.display(), entry.line, entry.key))
            })?;
        }
        Ok(())
    }

    fn set(&mut self, name: &str, value: Raw) -> Result<(), String> {
        if let Some(key) = key(name) {
            return (key.set)(self, value);
        }
        match self.settings.iter_mut().find(|(declared, _)| *declared == name) {
            Some((_, setting)) => {
                *setting = value.scalar()?;
                Ok(())
            }
            None => {
                let names: Vec<&str> = KEYS
                    .iter()
                    .map(|key| key.name)
                    .chain(self.settings.iter().map(|(name, _)| *name))
                    .collect();
                Err(format!("unknown key; the keys are: {}", names.join(", ")))
            }
        }
    }

    /// Bounds that no single value shows on its own.
    fn check(&self) -> Result<(), ConfigError> {
        let positive =
            [("max_connections", self.max_connections), ("max_header_bytes", self.max_header_bytes)];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("`{key}` must be at least 1")));
            }
        }
        let durations = [
            ("header_read_timeout", self.header_read_timeout),
            ("keep_alive_timeout", self.keep_alive_timeout),
            ("session_idle_timeout", self.session_idle_timeout),
            ("session_lifetime", self.session_lifetime),
        ];
        for (key, value) in durations {
            if value.is_zero() {
                return Err(ConfigError(format!("`{key}` must be longer than 0s")));
            }
        }
        if self.tls_certificate.is_some() != self.tls_key.is_some() {
            return Err(ConfigError(
                "`tls_certificate` and `tls_key` go together: set both (PEM files), or neither \
                 to use a systemd credential or the generated certificate"
                    .into(),
            ));
        }
        if self.listen.is_empty() && !self.require_activation {
            return Err(ConfigError(
                "`listen` is empty: give at least one address, or set require_activation".into(),
            ));
        }
        Ok(())
    }
}

enum ParsedFlags {
    Help,
    Version,
    Settings { reset_owner: bool, config_path: Option<PathBuf>, settings: Vec<(String, Raw)> },
}

fn parse_flags(
    args: impl IntoIterator<Item = OsString>,
    declared: &[Setting],
) -> Result<ParsedFlags, ConfigError> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let mut config_path = None;
    let mut settings = Vec::new();
    let mut listen = Vec::new();
    let mut reset_owner = false;
    let err = |e: lexopt::Error| ConfigError(format!("{e}; see portico --help"));

    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Short('h') | Long("help") => return Ok(ParsedFlags::Help),
            Short('V') | Long("version") => return Ok(ParsedFlags::Version),
            Short('c') | Long("config") => config_path = Some(PathBuf::from(parser.value().map_err(err)?)),
            Short('l') | Long("listen") => listen.push(flag_text(parser.value().map_err(err)?, "listen")?),
            Long(flag) => {
                let name = flag.replace('-', "_");
                let form = key(&name)
                    .map(|key| key.value)
                    .or_else(|| declared.iter().find(|s| s.name == name).map(|s| s.value));
                let Some(form) = form else {
                    return Err(ConfigError(format!("unknown option --{flag}; see portico --help")));
                };
                let value = match form {
                    // Switches: given alone they mean true, `--allow-root=false` also works.
                    "" => match parser.optional_value() {
                        Some(value) => flag_text(value, &name)?,
                        None => "true".to_owned(),
                    },
                    _ => flag_text(parser.value().map_err(err)?, &name)?,
                };
                settings.push((name, Raw::Text(value)));
            }
            Value(command) if command == "reset-owner" && !reset_owner => reset_owner = true,
            other => return Err(err(other.unexpected())),
        }
    }
    if !listen.is_empty() {
        settings.push(("listen".to_owned(), Raw::List(listen)));
    }
    Ok(ParsedFlags::Settings { reset_owner, config_path, settings })
}

fn flag_text(value: OsString, key: &str) -> Result<String, ConfigError> {
    value.into_string().map_err(|_| ConfigError(format!("--{}: not valid UTF-8", key.replace('_', "-"))))
}

fn parse_listen(text: &str) -> Result<Listen, String> {
    let (https, address) = match text.strip_prefix(HTTPS_PREFIX) {
        Some(address) => (true, address),
        None => (false, text),
    };
    if address.starts_with('/') {
        return Ok(Listen { addr: ListenAddr::Unix(PathBuf::from(address)), https });
    }
    let addr = address.parse().map(ListenAddr::Tcp).map_err(|_| {
        format!(
            "{text:?} is neither an address such as 127.0.0.1:8080 or [::]:80 \
             nor an absolute Unix socket path (either may start with {HTTPS_PREFIX} for HTTPS)"
        )
    })?;
    Ok(Listen { addr, https })
}

/// Parses `500ms`, `10s`, `5m`, `1h` (and a bare `0`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration such as \"10s\" or \"500ms\", found {text:?}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms).map(Duration::from_millis).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("99999999999999999h").is_err());
    }

    #[test]
    fn listen_takes_socket_addresses_and_absolute_paths() {
        let plain = |addr| Ok(Listen { addr, https: false });
        assert_eq!(parse_listen("[::]:80"), plain(ListenAddr::Tcp("[::]:80".parse().unwrap())));
        assert_eq!(parse_listen("/run/p.sock"), plain(ListenAddr::Unix("/run/p.sock".into())));
        let https = parse_listen("https://0.0.0.0:443").unwrap();
        assert_eq!((https.https, https.to_string()), (true, "https://0.0.0.0:443".to_owned()));
        assert!(parse_listen("https://localhost:443").is_err());
        assert!(parse_listen("localhost:80").is_err());
        assert!(parse_listen("p.sock").is_err());
    }

    #[test]
    fn file_errors_name_the_key() {
        let mut config = Config::default();
        let path = std::path::Path::new("portico.toml");
        let err = config.apply_file(path, "drain_timeout = 10").unwrap_err().to_string();
        assert!(err.contains("key `drain_timeout`") && err.contains("integer 10"), "{err}");
        let err = config.apply_file(path, "listen_on = \"x\"").unwrap_err().to_string();
        assert!(err.contains("key `listen_on`: unknown key"), "{err}");
        let err = config.apply_file(path, "max_connections = -1").unwrap_err().to_string();
        assert!(err.contains("whole number"), "{err}");
    }

    /// The shipped file documents every key with its true default: uncommented, it parses
    /// and changes nothing.
    #[test]
    fn the_shipped_config_file_documents_every_key_and_its_default() {
        let shipped = include_str!("../../../rootfs-overlay/etc/portico/portico.toml");
        let uncommented: String = shipped
            .lines()
            .filter_map(|line| line.strip_prefix('#').filter(|l| l.contains(" = ")))
            .map(|line| format!("{line}\n"))
            .collect();
        let documented: Vec<String> =
            flat_toml::parse(&uncommented).unwrap().into_iter().map(|e| e.key).collect();
        for key in KEYS {
            assert!(
                documented.iter().any(|d| d == key.name),
                "{} is not documented in the shipped portico.toml",
                key.name
            );
        }
        let mut from_file = Config::default();
        from_file.apply_file(std::path::Path::new("portico.toml"), &uncommented).unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn help_names_every_key() {
        let help = help("portico", &[]);
        for key in KEYS {
            let flag = format!("--{} ", key.name.replace('_', "-"));
            assert!(help.contains(&flag), "--help lacks {flag}");
        }
        assert!(help.lines().all(|line| line.len() <= 92), "{help}");
    }

    #[test]
    fn flags_override_and_repeat() {
        let args =
            ["--listen", "127.0.0.1:1", "-l", "/tmp/x.sock", "--require-activation", "--drain-timeout=3s"];
        let Ok(ParsedFlags::Settings { settings, .. }) = parse_flags(args.map(OsString::from), &[]) else {
            panic!("flags did not parse");
        };
        let mut config = Config::default();
        for (key, value) in settings {
            config.set(&key, value).unwrap();
        }
        assert_eq!(config.listen.len(), 2);
        assert!(config.require_activation);
        assert_eq!(config.drain_timeout, Duration::from_secs(3));
    }

    const COLOUR: Setting = Setting::new("colour", "NAME", "teal", "the colour of the team's page");

    fn serve(args: &[&str], declared: &[Setting]) -> Result<Box<Config>, ConfigError> {
        let args = ["--listen", "127.0.0.1:1"].iter().chain(args).map(OsString::from);
        match load(args, declared)? {
            Command::Serve(config) => Ok(config),
            _ => panic!("not a serve command"),
        }
    }

    /// A binary's own setting is one more key: its default, then the file, then a flag,
    /// and --help lists it with its default.
    #[test]
    fn a_declared_setting_is_set_like_porticos_own_keys() {
        let colour =
            |config: &Config| config.settings.iter().find(|(n, _)| *n == "colour").unwrap().1.clone();
        assert_eq!(colour(&serve(&[], &[COLOUR]).unwrap()), "teal");
        let file = std::env::temp_dir().join(format!("portico-declared-{}.toml", std::process::id()));
        std::fs::write(&file, "colour = \"plum\"\nmax_connections = 9\n").unwrap();
        let from_file = serve(&["--config", file.to_str().unwrap()], &[COLOUR]).unwrap();
        assert_eq!((colour(&from_file).as_str(), from_file.max_connections), ("plum", 9));
        let flag = serve(&["--config", file.to_str().unwrap(), "--colour", "ochre"], &[COLOUR]).unwrap();
        assert_eq!(colour(&flag), "ochre");
        std::fs::remove_file(&file).unwrap();
        let help = help("hello-device", &[COLOUR]);
        assert!(help.contains("--colour NAME") && help.contains("[default: teal]"), "{help}");
        assert!(help.contains("Usage: hello-device [OPTIONS]"), "{help}");
        // Undeclared, it is an unknown option like any other.
        let unknown = serve(&["--colour", "ochre"], &[]).unwrap_err().to_string();
        assert!(unknown.contains("unknown option --colour"), "{unknown}");
    }

    /// A name that is no key, or portico's own, or declared twice is the binary author's
    /// mistake, told at the first start.
    #[test]
    fn a_declared_setting_must_be_a_new_key() {
        for (declared, says) in [
            (vec![Setting::new("drain_timeout", "D", "1s", "")], "portico's own or declared twice"),
            (vec![COLOUR, COLOUR], "portico's own or declared twice"),
            (vec![Setting::new("Colour", "N", "", "")], "no key name"),
            (vec![Setting::new("", "N", "", "")], "no key name"),
            (vec![Setting::new("col-our", "N", "", "")], "no key name"),
        ] {
            let err = serve(&[], &declared).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
