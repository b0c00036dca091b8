//! The shell completions and man pages, generated from the command-line definitions (`cli`):
//! one page per command and subcommand, each with the global options, and the sections a man
//! page reader looks for (EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES, SEE ALSO). Written by
//! `smime-acme completions SHELL` and `smime-acme man DIR`, and committed under `completions/`
//! and `man/` (a test keeps those in step).

use clap::CommandFactory;
use clap_complete::Shell;
use roff::{Roff, bold, italic, roman};

use crate::cli::Cli;

/// The program's name, as installed.
const NAME: &str = "smime-acme";

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), NAME, &mut out);
    out
}

/// The completion files as distributions name them: (file name, content).
pub fn completion_files() -> Vec<(String, Vec<u8>)> {
    [
        (Shell::Bash, "smime-acme.bash"),
        (Shell::Zsh, "_smime-acme"),
        (Shell::Fish, "smime-acme.fish"),
    ]
    .into_iter()
    .map(|(shell, file)| (file.to_owned(), completion(shell)))
    .collect()
}

/// Every man page: (file name, content).
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let mut root = Cli::command();
    // Built as a whole, so that every subcommand carries the global options.
    root.build();
    let mut pages = Vec::new();
    add_pages(&root, NAME, None, &mut pages);
    pages
}

fn add_pages(
    command: &clap::Command,
    name: &str,
    parent: Option<&str>,
    pages: &mut Vec<(String, Vec<u8>)>,
) {
    let children: Vec<String> = command
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("{name}-{}", s.get_name()))
        .collect();
    pages.push((format!("{name}.1"), page(command, name, parent, &children)));
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_name = format!("{name}-{}", sub.get_name());
        add_pages(sub, &sub_name, Some(name), pages);
    }
}

fn page(command: &clap::Command, name: &str, parent: Option<&str>, children: &[String]) -> Vec<u8> {
    let command = command
        .clone()
        .name(name.to_owned())
        .display_name(name.to_owned());
    let man = clap_mangen::Man::new(command.clone())
        .title(name.to_owned())
        .section("1")
        .source(format!("{NAME} {}", env!("CARGO_PKG_VERSION")))
        .manual("smime-acme manual");
    let mut out = Vec::new();
    // Writing to memory cannot fail. Each part starts with the same preamble: kept once.
    let _ = man.render_title(&mut out);
    let mut part = |render: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = Vec::new();
        render(&mut bytes);
        out.extend(without_preamble(&bytes));
    };
    part(&|w| drop(man.render_name_section(w)));
    part(&|w| drop(man.render_synopsis_section(w)));
    part(&|w| drop(man.render_description_section(w)));
    part(&|w| drop(man.render_options_section(w)));
    if command.has_subcommands() {
        part(&|w| drop(man.render_subcommands_section(w)));
    }
    let mut roff = Roff::new();
    exit_status(&mut roff);
    environment(&mut roff);
    files(&mut roff);
    examples(&mut roff, name);
    see_also(&mut roff, parent, children);
    out.extend(without_preamble(roff.render().as_bytes()));
    out
}

/// `roff` without the lines that define the apostrophe string (written once, with the title).
fn without_preamble(roff: &[u8]) -> &[u8] {
    let mut rest = roff;
    while rest.starts_with(b".ie \\n(.g") || rest.starts_with(b".el .ds Aq") {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        rest = &rest[end..];
    }
    rest
}

fn section(roff: &mut Roff, title: &str) {
    roff.control("SH", [title]);
}

fn item(roff: &mut Roff, term: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(term)]);
    roff.text([roman(text)]);
}

/// The exit statuses, as `--help` lists them.
fn exit_status(roff: &mut Roff) {
    section(roff, "EXIT STATUS");
    for line in crate::cli::EXIT_CODES.lines().skip(1) {
        if let Some((code, text)) = line.trim().split_once(char::is_whitespace) {
            item(roff, code, text.trim());
        }
    }
}

/// Every environment variable smime-acme reads or sets.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("SMIME_ACME_HOME", "The state folder (as --state-dir)."),
    ("SMIME_ACME_CONFIG", "The configuration file (as --config)."),
    ("SMIME_ACME_LOG_FILE", "The log file (as --log-file)."),
    (
        "SMIME_ACME_SERVER",
        "The CA's ACME directory URL (as --server).",
    ),
    (
        "SMIME_ACME_CA_BUNDLE",
        "Extra trusted roots, PEM (as --ca-bundle).",
    ),
    (
        "SMIME_ACME_PASSWORD",
        "The mail password, when no --password-file or --password-command is given. Removed \
         from the environment of every command smime-acme runs.",
    ),
    (
        "SMIME_ACME_P12_PASSWORD",
        "The PKCS#12 password, when no --p12-password-file is given. Removed from the \
         environment of every command smime-acme runs.",
    ),
    (
        "SMIME_ACME_OAUTH_REFRESH_TOKEN",
        "The OAuth2 refresh token, when no --oauth-refresh-token-file is given (with \
         --oauth-token-url). Removed from the environment of every command smime-acme runs.",
    ),
    (
        "SMIME_ACME_EMAIL, SMIME_ACME_FOLDER, SMIME_ACME_P12, SMIME_ACME_P12_PASSWORD_FILE, \
         SMIME_ACME_KEY, SMIME_ACME_CERT, SMIME_ACME_CHAIN, SMIME_ACME_FULLCHAIN",
        "Set for a deploy hook: the address, the new certificate's folder and its files (the \
         password file only when the password was generated or kept).",
    ),
];

fn environment(roff: &mut Roff) {
    section(roff, "ENVIRONMENT");
    for (name, text) in ENVIRONMENT {
        item(roff, name, text);
    }
}

fn files(roff: &mut Roff) {
    section(roff, "FILES");
    for (path, text) in [
        (
            "~/.config/smime-acme/config.toml",
            "The configuration file, unless --config or SMIME_ACME_CONFIG names another.",
        ),
        (
            "/etc/smime-acme/config.toml",
            "The configuration file when the user has none.",
        ),
        (
            "~/.local/share/smime-acme/",
            "The state folder, unless --state-dir or SMIME_ACME_HOME names another. Files 0600 \
             in 0700 folders:",
        ),
    ] {
        item(roff, path, text);
    }
    roff.control("RS", []);
    for (path, text) in [
        ("accounts/SERVER/", "the ACME account key and URL, per CA"),
        (
            "certs/EMAIL/TIME-SERIAL/",
            "one folder per certificate: key.pem, cert.pem, chain.pem, fullchain.pem, EMAIL.p12, p12-password",
        ),
        (
            "certs/EMAIL/current",
            "the name of the newest certificate folder",
        ),
        ("certs/EMAIL/settings.json", "the settings renew reuses"),
        (
            "certs/EMAIL/p12-password",
            "the PKCS#12 password renewals reuse",
        ),
        (
            "pending/EMAIL.json",
            "an issuance under way, resumed by the next run",
        ),
        ("locks/", "held while a run works on a mailbox"),
    ] {
        roff.control("TP", []);
        roff.text([italic(path)]);
        roff.text([roman(text)]);
    }
    roff.control("RE", []);
}

/// Examples per page; a page without its own shows how to get help.
fn examples(roff: &mut Roff, name: &str) {
    let examples: &[(&str, &str)] = match name.strip_prefix("smime-acme-").unwrap_or("") {
        "" => &[
            (
                "Get a certificate:",
                "smime-acme obtain you@example.com --server https://acme.ca.example/directory --password-file ~/.config/smime-acme/mail-password",
            ),
            (
                "Renew what is due, quietly (cron, systemd):",
                "smime-acme renew -q",
            ),
            (
                "Check a mailbox before ordering:",
                "smime-acme doctor you@example.com",
            ),
        ],
        "obtain" => &[
            (
                "A certificate with an ECDSA key, mail servers named:",
                "smime-acme obtain you@example.com --imap imap.example.com --smtp smtp.example.com --key-type p256 --password-file ~/.config/smime-acme/mail-password",
            ),
            (
                "With a command run after the certificate is saved, and after every renewal:",
                "smime-acme obtain you@example.com --deploy-hook 'cp \"$SMIME_ACME_P12\" /srv/smime/'",
            ),
        ],
        "renew" => &[
            (
                "Renew what is due, printing only renewals and failures:",
                "smime-acme renew -q",
            ),
            (
                "Renew one address now, with a new bundle password:",
                "smime-acme renew you@example.com --force --new-p12-password",
            ),
            (
                "Many certificates, eight at once, as JSON lines:",
                "smime-acme renew --jobs 8 --json",
            ),
        ],
        "revoke" => &[
            (
                "Revoke the current certificate of an address:",
                "smime-acme revoke you@example.com --reason superseded",
            ),
            (
                "Revoke with the certificate's own key (the account is lost):",
                "smime-acme revoke --cert cert.pem --sign-with-cert-key --key key.pem --server https://acme.ca.example/directory",
            ),
        ],
        "account" | "account-register" | "account-show" | "account-update" | "account-rollover"
        | "account-deactivate" => &[
            (
                "Register with external account binding:",
                "smime-acme account register --server https://acme.ca.example/directory --contact you@example.com --eab-kid KID --eab-hmac-key-file eab.key",
            ),
            (
                "Show the account:",
                "smime-acme account show --server https://acme.ca.example/directory",
            ),
        ],
        "list" => &[(
            "Every certificate, as JSON lines:",
            "smime-acme list --json",
        )],
        "show" => &[(
            "One address, with its history:",
            "smime-acme show you@example.com",
        )],
        "export" => &[
            (
                "Every key ever issued for the address, in one bundle:",
                "smime-acme export you@example.com --all-keys --out all.p12",
            ),
            (
                "Key and certificates as PEM:",
                "smime-acme export you@example.com --format pem --out you.pem",
            ),
        ],
        "provision" => &[
            (
                "Every mailbox of a manifest, eight at once:",
                "smime-acme provision staff.toml --jobs 8 --agree-tos",
            ),
            (
                "The second of four hosts sharing one manifest:",
                "smime-acme provision staff.toml -q --shard 2/4",
            ),
        ],
        "doctor" => &[(
            "Check everything obtain needs:",
            "smime-acme doctor you@example.com --password-file ~/.config/smime-acme/mail-password",
        )],
        "forget" => &[
            (
                "Stop renewing an address, keeping its files:",
                "smime-acme forget old@example.com --yes",
            ),
            (
                "Remove everything kept for it:",
                "smime-acme forget old@example.com --purge --yes",
            ),
        ],
        "completions" => &[(
            "Bash completions for the current user:",
            "smime-acme completions bash > ~/.local/share/bash-completion/completions/smime-acme",
        )],
        "man" => &[(
            "The man pages for the current user:",
            "smime-acme man ~/.local/share/man/man1",
        )],
        _ => &[],
    };
    section(roff, "EXAMPLES");
    if examples.is_empty() {
        roff.text([roman(format!("See {name} --help."))]);
    }
    for (what, command) in examples {
        roff.control("PP", []);
        roff.text([roman(*what)]);
        roff.control("RS", []);
        roff.control("nf", []);
        roff.text([bold(*command)]);
        roff.control("fi", []);
        roff.control("RE", []);
    }
}

fn see_also(roff: &mut Roff, parent: Option<&str>, children: &[String]) {
    section(roff, "SEE ALSO");
    let mut names: Vec<String> = parent.into_iter().map(str::to_owned).collect();
    if parent.is_some_and(|p| p != NAME) {
        names.push(NAME.to_owned());
    }
    names.extend(children.iter().cloned());
    let refs: Vec<String> = names.iter().map(|n| format!("{n}(1)")).collect();
    roff.text([roman(refs.join(", "))]);
}
