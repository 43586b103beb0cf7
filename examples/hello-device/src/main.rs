//! hello-device: portico's pages and the team's own, in one binary.

mod hello;

use portico::Portico;

fn main() -> std::process::ExitCode {
    Portico::new().setting(hello::GREETING).routes(hello::routes()).main()
}
