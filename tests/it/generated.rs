//! The shell completions in `completions/` and the man pages in `man/` are generated from the
//! command-line definitions. This test fails when they drift; regenerate them with
//! `SMIME_ACME_REGENERATE=1 cargo test --test it generated`. The pages must also carry the
//! sections readers look for, the version, and no reference to a page that does not exist, and
//! ENVIRONMENT must name every SMIME_ACME_* variable the source reads or sets.

use std::path::Path;

use smime_acme::manpages;

fn generated() -> Vec<(String, Vec<u8>)> {
    let completions = manpages::completion_files()
        .into_iter()
        .map(|(name, content)| (format!("completions/{name}"), content));
    let pages = manpages::pages()
        .into_iter()
        .map(|(name, content)| (format!("man/{name}"), content));
    completions.chain(pages).collect()
}

#[test]
fn completions_and_man_pages_match_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os("SMIME_ACME_REGENERATE").is_some();
    let files = generated();
    let mut stale = Vec::new();
    if regenerate {
        // Pages of commands that are gone go too.
        for entry in std::fs::read_dir(root.join("man"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = format!("man/{}", entry.file_name().to_string_lossy());
            if !files.iter().any(|(p, _)| *p == path) {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }
    for (path, content) in &files {
        let full = root.join(path);
        if regenerate {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content).unwrap();
        } else if std::fs::read(&full).ok().as_deref() != Some(content.as_slice()) {
            stale.push(path.clone());
        }
    }
    let committed = std::fs::read_dir(root.join("man")).unwrap().count();
    assert_eq!(
        committed,
        files.iter().filter(|(p, _)| p.starts_with("man/")).count(),
        "man/ holds a page no command has; regenerate"
    );
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; regenerate with `SMIME_ACME_REGENERATE=1 cargo test --test it generated`"
    );
}

#[test]
fn every_man_page_has_the_sections_and_references_only_pages_that_exist() {
    let pages = manpages::pages();
    let names: Vec<String> = pages
        .iter()
        .map(|(n, _)| n.trim_end_matches(".1").to_owned())
        .collect();
    assert!(names.contains(&"smime-acme-obtain".to_owned()));
    assert!(names.contains(&"smime-acme-account-register".to_owned()));
    assert!(
        !names.iter().any(|n| n.ends_with("-help")),
        "no page for the help subcommand"
    );
    for (name, content) in &pages {
        let text = String::from_utf8_lossy(content);
        let version = format!("\"smime-acme {}\"", env!("CARGO_PKG_VERSION"));
        let th = text
            .lines()
            .find(|l| l.starts_with(".TH "))
            .unwrap_or_default();
        assert!(
            th.contains(&version),
            "{name}: .TH without the version: {th}"
        );
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "EXIT STATUS",
            "ENVIRONMENT",
            "FILES",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                text.lines()
                    .any(|l| l == format!(".SH {section}") || l == format!(".SH \"{section}\"")),
                "{name}: no {section} section"
            );
        }
        // The global options are on every page.
        assert!(text.contains("\\-\\-state\\-dir"), "{name}: no --state-dir");
        assert!(text.contains("\\-\\-log\\-file"), "{name}: no --log-file");
        // Every reference NAME(1) to one of ours is a page.
        for word in text.split(|c: char| c.is_whitespace() || c == ',') {
            if let Some(reference) = word.strip_suffix("(1)") {
                let reference = reference
                    .replace("\\-", "-")
                    .replace("\\fB", "")
                    .replace("\\fR", "");
                if reference.starts_with("smime-acme") {
                    assert!(
                        names.contains(&reference),
                        "{name} refers to {reference}(1), which does not exist"
                    );
                }
            }
        }
    }
}

#[test]
fn the_environment_section_names_every_variable_of_the_source() {
    let documented: String = manpages::ENVIRONMENT
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(" ");
    let mut missing = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            );
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (i, _) in text.match_indices("\"SMIME_ACME_") {
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let listed = documented.split([' ', ',']).any(|d| d == name);
            if !listed && !missing.contains(&name) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in the man pages' ENVIRONMENT: {missing:?}"
    );
}
