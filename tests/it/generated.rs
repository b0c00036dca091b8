//! The shell completions in `completions/` and the man pages in `man/` are generated from the
//! command-line definitions. This test fails when they drift; regenerate them with
//! `SMIME_ACME_REGENERATE=1 cargo test --test it generated`.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use smime_acme::cli::Cli;

fn generated() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (shell, name) in [
        (Shell::Bash, "smime-acme.bash"),
        (Shell::Zsh, "_smime-acme"),
        (Shell::Fish, "smime-acme.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "smime-acme", &mut out);
        files.push((format!("completions/{name}"), out));
    }
    let command = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut out)
        .expect("render the man page");
    files.push(("man/smime-acme.1".to_owned(), out));
    for sub in command.get_subcommands() {
        let name: &'static str =
            Box::leak(format!("smime-acme-{}", sub.get_name()).into_boxed_str());
        let mut out = Vec::new();
        clap_mangen::Man::new(sub.clone().name(name))
            .render(&mut out)
            .expect("render the man page");
        files.push((format!("man/{name}.1"), out));
    }
    files
}

#[test]
fn completions_and_man_pages_match_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os("SMIME_ACME_REGENERATE").is_some();
    let mut stale = Vec::new();
    for (path, content) in generated() {
        let full = root.join(&path);
        if regenerate {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, &content).unwrap();
        } else if std::fs::read(&full).ok().as_deref() != Some(content.as_slice()) {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; regenerate with `SMIME_ACME_REGENERATE=1 cargo test --test it generated`"
    );
}
