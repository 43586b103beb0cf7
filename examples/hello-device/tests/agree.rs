//! What this crate shows is what runs: README's "Adding your own page" shows its files as
//! they are, and its units are portico's with the name changed and nothing else.

use std::path::Path;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// README's "Adding your own page" shows the crate's dependencies, src/hello.rs and
/// src/main.rs as they are, each whole as a code block of its own.
#[test]
fn the_readme_shows_these_very_files() {
    let readme = read(&Path::new(CRATE).join("../../README.md"));
    let at = readme.find("\n## Adding your own page\n").expect("README's \"Adding your own page\"");
    let section = &readme[at + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let manifest = read(&Path::new(CRATE).join("Cargo.toml"));
    let dependencies =
        &manifest[manifest.find("[dependencies]").unwrap()..manifest.find("[dev-dependencies]").unwrap()];
    for (file, text) in [
        ("Cargo.toml's [dependencies]", dependencies.to_owned()),
        ("src/hello.rs", read(&Path::new(CRATE).join("src/hello.rs"))),
        ("src/main.rs", read(&Path::new(CRATE).join("src/main.rs"))),
    ] {
        // Blank lines around it: the block is the whole file, no more and no less.
        let block: String = text
            .trim_end()
            .lines()
            .map(|l| if l.is_empty() { "\n".to_owned() } else { format!("    {l}\n") })
            .collect();
        assert!(
            section.contains(&format!("\n\n{block}\n")),
            "README's \"Adding your own page\" does not show examples/hello-device/{file} as it is:\n{block}"
        );
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// portico's units that run portico (the updater's are portico's own), each with its
/// counterpart here: hello-device.socket, hello-device-https.socket, hello-device.service.
#[test]
fn the_units_are_porticos_with_the_name_changed() {
    let (theirs, ours) = (Path::new(CRATE).join("../../systemd"), Path::new(CRATE).join("systemd"));
    let names = |dir: &Path, keep: &dyn Fn(&str) -> bool| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| keep(name))
            .collect();
        names.sort();
        names
    };
    let serving = |name: &str| name.ends_with(".socket") || name == "portico.service";
    let portico_units = names(&theirs, &serving);
    let renamed: Vec<String> =
        portico_units.iter().map(|name| name.replace("portico", "hello-device")).collect();
    assert_eq!(names(&ours, &|_| true), renamed, "examples/hello-device/systemd/ has not portico's units");
    for (portico, own) in portico_units.iter().zip(&renamed) {
        assert!(
            read(&ours.join(own)) == read(&theirs.join(portico)).replace("portico", "hello-device"),
            "systemd/{own} is not systemd/{portico} renamed; make it again with\n    \
             sed s/portico/hello-device/g systemd/{portico} >examples/hello-device/systemd/{own}"
        );
    }
}
