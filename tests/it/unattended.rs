//! Unattended use: the log file, a reader that goes away, and the configuration file found
//! through the environment.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::obtain::{command, obtain_args, run, state_dir, stderr};
use crate::testbed::Testbed;

#[test]
fn the_log_file_gets_timestamped_lines_and_no_secret() {
    let tb = Testbed::get();
    let mailbox = "staff86@example.test";
    let state = state_dir("log-file");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = state.join("smime-acme.log");
    for _ in 0..2 {
        let mut args = obtain_args(&tb, mailbox, &state, &["-q"]);
        args[0] = "doctor".into();
        // -q for the terminal (it excludes -v); the log file still gets what -v shows.
        args.retain(|a| a != "-v" && a != "--json");
        args.extend(["--log-file".into(), log.clone().into_os_string()]);
        let (out, _) = run(command(args));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            out.stderr.is_empty(),
            "-q: nothing on stderr: {}",
            stderr(&out)
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the log file is private");
    let starts: Vec<&str> = text.lines().filter(|l| l.ends_with("doctor")).collect();
    assert_eq!(starts.len(), 2, "appended, one start line per run:\n{text}");
    for line in text.lines() {
        let stamp = line.split(' ').next().unwrap_or_default();
        assert!(
            smime_acme::clock::parse_rfc3339(stamp).is_some(),
            "every line starts with the time: {line:?}"
        );
    }
    assert!(text.contains("logging in to"), "what -v shows: {text}");
    assert!(text.contains("pass  dkim"), "the result too: {text}");
    assert!(
        !text.contains(&tb.password(mailbox)),
        "no password in the log"
    );
}

#[test]
fn a_log_file_that_cannot_be_opened_is_a_usage_error() {
    let state = state_dir("log-file-bad");
    let (out, _) = run(command(
        [
            "list",
            "--log-file",
            "/nonexistent-folder/x.log",
            "--state-dir",
        ]
        .map(Into::into)
        .into_iter()
        .chain([state.into_os_string()])
        .collect(),
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot open the log file /nonexistent-folder/x.log"));

    // A link is refused (it could point anywhere); a file others could read is made private.
    let state = state_dir("log-file-link");
    let target = state.join("target.log");
    std::fs::write(&target, "").unwrap();
    let link = state.join("link.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let list = |log: &std::path::Path| {
        let args = ["list", "--log-file"].map(Into::into).into_iter();
        let args = args.chain([
            log.as_os_str().to_owned(),
            "--state-dir".into(),
            state.clone().into_os_string(),
        ]);
        run(command(args.collect()))
    };
    let (out, _) = list(&link);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (out, _) = list(&target);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let state = state_dir("closed-pipe");
    // doctor with settings that do not resolve prints its report at once, with no network.
    let mut child = command(
        [
            "doctor",
            "nobody@example.test",
            "--server",
            "http://not-https.example/directory",
            "--state-dir",
        ]
        .map(Into::into)
        .into_iter()
        .chain([state.into_os_string()])
        .collect(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("smime-acme runs");
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "the command's own status: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn the_configuration_file_is_found_through_smime_acme_config() {
    let state = state_dir("config-env");
    let config = state.join("elsewhere.toml");
    std::fs::write(
        &config,
        "[server]\nurl = \"http://from-the-config-file.example/directory\"\n",
    )
    .unwrap();
    let mut cmd = command(
        ["doctor", "nobody@example.test", "--json", "--state-dir"]
            .map(Into::into)
            .into_iter()
            .chain([state.into_os_string()])
            .collect(),
    );
    cmd.env("SMIME_ACME_CONFIG", &config);
    let (out, json) = run(cmd);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        json.to_string().contains("from-the-config-file.example"),
        "the URL of the file named by SMIME_ACME_CONFIG was used: {json}"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_binary_too() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, file) in [
        ("bash", "smime-acme.bash"),
        ("zsh", "_smime-acme"),
        ("fish", "smime-acme.fish"),
    ] {
        let (out, _) = run(command(vec!["completions".into(), shell.into()]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            out.stdout,
            std::fs::read(root.join("completions").join(file)).unwrap(),
            "{shell}"
        );
    }
    let dir = state_dir("man-pages").join("man1");
    let (out, _) = run(command(vec!["man".into(), dir.clone().into_os_string()]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut committed: Vec<String> = std::fs::read_dir(root.join("man"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    assert_eq!(written, committed);
    for name in &written {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            std::fs::read(root.join("man").join(name)).unwrap(),
            "{name}"
        );
    }
    let (out, _) = run(command(vec!["completions".into(), "tcsh".into()]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
