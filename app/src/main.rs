//! portico: a device's status page, JSON API, health check, metrics and the owner's login,
//! served on the sockets systemd passes. The library is all of it.

fn main() -> std::process::ExitCode {
    portico::Portico::new().main()
}
