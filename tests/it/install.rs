//! `install` into NSS databases (a fresh one, a Thunderbird home found through profiles.ini, a
//! profile Thunderbird holds), checked with NSS's own certutil; `export --format mobileconfig`
//! read back with Python's plistlib and OpenSSL; the import instructions after obtain and in
//! show. Certificates come from the testbed's acme2certifier.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::obtain::{ca_lock, command, obtain_args, ok, state_dir, stderr, tool};
use crate::testbed::{TestResult, Testbed};

/// smime-acme with `args` on the state folder `state`, HOME at `home`, and temporary files
/// under `home/tmp` (XDG_RUNTIME_DIR unset), so that a run's leftovers can be looked for.
fn cli(state: &Path, home: &Path, args: &[&str]) -> (Output, Value) {
    let mut all: Vec<OsString> = args.iter().map(Into::into).collect();
    all.extend(["--state-dir".into(), state.as_os_str().to_owned()]);
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = command(all)
        .env("HOME", home)
        .env("TMPDIR", &tmp)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("smime-acme runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, json)
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Obtains a certificate for `mailbox`; its JSON result.
fn obtain(tb: &Testbed, mailbox: &str, state: &Path) -> Value {
    let out = {
        let _ca = ca_lock();
        command(obtain_args(tb, mailbox, state, &["--key-type", "p256"]))
            .output()
            .expect("obtain runs")
    };
    ok(&out, &format!("obtain for {mailbox}"));
    serde_json::from_slice(&out.stdout).expect("obtain prints JSON")
}

/// A fresh NSS database without a primary password in `dir`.
fn new_db(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let db = format!("sql:{}", dir.display());
    ok(
        &tool("certutil", &["-N", "--empty-password", "-d", &db]),
        "certutil -N",
    );
    db
}

/// The private keys `certutil -K` lists (their lines).
fn keys(db: &str) -> Vec<String> {
    let out = tool("certutil", &["-K", "-d", db]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('<'))
        .map(str::to_owned)
        .collect()
}

fn listing(db: &str) -> String {
    ok(&tool("certutil", &["-L", "-d", db]), "certutil -L")
}

/// What `certutil -V -u S` (valid for email signing?) says about `nickname`.
fn verify_for_signing(db: &str, nickname: &str) -> String {
    let out = tool("certutil", &["-V", "-u", "S", "-n", nickname, "-d", db]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Nothing left in the run's temporary folder.
fn assert_no_leftovers(home: &Path) {
    let left: Vec<PathBuf> = std::fs::read_dir(home.join("tmp"))
        .map(|e| e.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
fn install_into_an_nss_database_trusts_the_root_only_when_asked_and_twice_is_once() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff90@example.test";
    let state = state_dir("install-nss");
    let home = state.join("home");
    let issued = obtain(&tb, mailbox, &state);
    let dir = state.join("nssdb");
    let db = new_db(&dir);
    let dir_arg = dir.to_str().unwrap();

    let (out, json) = cli(
        &state,
        &home,
        &["install", mailbox, "--nss-db", dir_arg, "--json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_no_leftovers(&home);
    assert_eq!(json["status"], "installed", "{json}");
    assert_eq!(json["target"], "nss-db");
    assert_eq!(json["trusted_root"], Value::Null);
    let certs = json["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 1, "{json}");
    assert_eq!(certs[0]["serial"], issued["serial"]);
    assert_eq!(certs[0]["new"], true);
    let nickname = certs[0]["nickname"]
        .as_str()
        .expect("a nickname")
        .to_owned();
    assert!(nickname.starts_with(&format!("{mailbox} (")), "{nickname}");

    // The key, the leaf and the intermediate are in the database; the intermediate untrusted.
    let keys_after_first = keys(&db);
    assert_eq!(keys_after_first.len(), 1, "{keys_after_first:?}");
    assert!(
        keys_after_first[0].ends_with(&nickname),
        "{keys_after_first:?}"
    );
    let list = listing(&db);
    assert!(list.contains(&nickname), "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains("Email Issuing CA - ") && l.trim_end().ends_with(",,")),
        "the intermediate, without trust: {list}"
    );
    assert!(
        json["ca_certificates"][0]
            .as_str()
            .is_some_and(|s| s.contains("Email Issuing CA"))
    );
    // Without the root trusted, NSS cannot call the certificate valid.
    let verdict = verify_for_signing(&db, &nickname);
    assert!(!verdict.contains("certificate is valid"), "{verdict}");

    // A root that did not issue the chain is refused, and nothing is trusted.
    let stranger = state.join("stranger.pem");
    ok(
        &tool(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                state.join("stranger.key").to_str().unwrap(),
                "-subj",
                "/O=smime-acme testbed/CN=smime-acme Testbed Root",
                "-days",
                "1",
                "-out",
                stranger.to_str().unwrap(),
            ],
        ),
        "openssl req",
    );
    let (out, _) = cli(
        &state,
        &home,
        &[
            "install",
            mailbox,
            "--nss-db",
            dir_arg,
            "--trust-root",
            stranger.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("did not issue"), "{}", stderr(&out));
    assert!(!listing(&db).contains(",C,"), "nothing trusted");

    // Again, with the testbed root trusted (--trust-root): nothing new, and now valid for email
    // signing.
    let root = tb.var("SMIME_ACME_CA_BUNDLE");
    let (out, json) = cli(
        &state,
        &home,
        &[
            "install",
            mailbox,
            "--nss-db",
            dir_arg,
            "--trust-root",
            root,
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_no_leftovers(&home);
    assert_eq!(json["certificates"][0]["new"], false, "{json}");
    assert_eq!(json["certificates"][0]["nickname"], nickname.as_str());
    assert_eq!(json["trusted_root"]["nickname"], "smime-acme Testbed Root");
    assert_eq!(keys(&db), keys_after_first, "no second key");
    let list = listing(&db);
    assert_eq!(
        list.matches(&nickname).count(),
        1,
        "no second certificate: {list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("smime-acme Testbed Root") && l.trim_end().ends_with(",C,")),
        "the root, trusted for email only: {list}"
    );
    let verdict = verify_for_signing(&db, &nickname);
    assert!(verdict.contains("certificate is valid"), "{verdict}");

    // Human output names what was imported.
    let (out, _) = cli(&state, &home, &["install", mailbox, "--nss-db", dir_arg]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&nickname) && text.contains(issued["serial"].as_str().unwrap()),
        "{text}"
    );

    // A database with a primary password: refused without it (no terminal), wrong one
    // refused, right one from a file works.
    let locked_dir = state.join("nssdb-password");
    std::fs::create_dir_all(&locked_dir)?;
    let locked = format!("sql:{}", locked_dir.display());
    let password = state.join("nss-password");
    std::fs::write(&password, "primary secret\n")?;
    ok(
        &tool(
            "certutil",
            &["-N", "-d", &locked, "-f", password.to_str().unwrap()],
        ),
        "certutil -N with a password",
    );
    let locked_arg = locked_dir.to_str().unwrap();
    let (out, _) = cli(&state, &home, &["install", mailbox, "--nss-db", locked_arg]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--nss-password-file"),
        "{}",
        stderr(&out)
    );
    let wrong = state.join("wrong-password");
    std::fs::write(&wrong, "not it\n")?;
    let (out, _) = cli(
        &state,
        &home,
        &[
            "install",
            mailbox,
            "--nss-db",
            locked_arg,
            "--nss-password-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("not it"),
        "the password is never shown"
    );
    assert_no_leftovers(&home);
    let (out, _) = cli(
        &state,
        &home,
        &[
            "install",
            mailbox,
            "--nss-db",
            locked_arg,
            "--nss-password-file",
            password.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_no_leftovers(&home);
    let out = tool(
        "certutil",
        &["-K", "-d", &locked, "-f", password.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&nickname));

    // On a terminal, the primary password is asked for (without echo).
    let asked_dir = state.join("nssdb-asked");
    std::fs::create_dir_all(&asked_dir)?;
    let asked = sql(&asked_dir);
    ok(
        &tool(
            "certutil",
            &["-N", "-d", &asked, "-f", password.to_str().unwrap()],
        ),
        "certutil -N with a password",
    );
    let typed = on_a_terminal(
        &home,
        &format!(
            "{} install {mailbox} --nss-db {} --state-dir {}",
            env!("CARGO_BIN_EXE_smime-acme"),
            asked_dir.display(),
            state.display()
        ),
        "primary secret\n",
    );
    let screen = ok(&typed, "install asking for the primary password");
    assert!(
        screen.contains("Primary password of the NSS database"),
        "{screen}"
    );
    assert!(!screen.contains("primary secret"), "echoed: {screen}");
    let out = tool(
        "certutil",
        &["-K", "-d", &asked, "-f", password.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&nickname));
    assert_no_leftovers(&home);

    // Without NSS's tools: which package to install.
    let mut all: Vec<OsString> = ["install", mailbox, "--nss-db", dir_arg, "--state-dir"]
        .map(OsString::from)
        .to_vec();
    all.push(state.as_os_str().to_owned());
    let out = command(all)
        .env("PATH", state.join("empty-path"))
        .env("HOME", &home)
        .output()?;
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("libnss3-tools"), "{}", stderr(&out));

    // A folder without a database is not made into one.
    let empty = state.join("no-db");
    std::fs::create_dir_all(&empty)?;
    let (out, _) = cli(
        &state,
        &home,
        &["install", mailbox, "--nss-db", empty.to_str().unwrap()],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!empty.join("cert9.db").exists());
    Ok(())
}

#[test]
fn all_keys_after_a_renewal_imports_both_and_the_mobileconfig_holds_both() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff91@example.test";
    let state = state_dir("install-all-keys");
    let home = state.join("home");
    let first = obtain(&tb, mailbox, &state);
    let (out, _) = {
        let _ca = ca_lock();
        cli(&state, &home, &["renew", "--force", "--json"])
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // The current key only, then every key.
    let current_db = new_db(&state.join("current"));
    let (out, json) = cli(
        &state,
        &home,
        &[
            "install",
            mailbox,
            "--nss-db",
            state.join("current").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json["certificates"].as_array().map(Vec::len), Some(1));
    assert_ne!(
        json["certificates"][0]["serial"], first["serial"],
        "the renewed one"
    );
    assert_eq!(keys(&current_db).len(), 1);

    let all_db = new_db(&state.join("all"));
    let (out, json) = cli(
        &state,
        &home,
        &[
            "install",
            mailbox,
            "--nss-db",
            state.join("all").to_str().unwrap(),
            "--all-keys",
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let certs = json["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 2, "{json}");
    assert!(
        certs.iter().any(|c| c["serial"] == first["serial"]),
        "{json}"
    );
    assert_eq!(keys(&all_db).len(), 2, "both keys: {:?}", keys(&all_db));
    // Every key into the database that already holds the current one: only the old is new.
    let (out, json) = cli(
        &state,
        &home,
        &[
            "install",
            mailbox,
            "--nss-db",
            state.join("current").to_str().unwrap(),
            "--all-keys",
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let certs = json["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 2, "{json}");
    for cert in certs {
        let old = cert["serial"] == first["serial"];
        assert_eq!(cert["new"], old, "only the old certificate is new: {json}");
    }
    assert_eq!(keys(&current_db).len(), 2);

    // Every key as an Apple configuration profile: one PKCS#12 payload per key.
    let profile = state.join("all.mobileconfig");
    let password = state.join("p12-password");
    std::fs::write(&password, "correct horse battery\n")?;
    let (out, json) = cli(
        &state,
        &home,
        &[
            "export",
            mailbox,
            "--all-keys",
            "--format",
            "mobileconfig",
            "--out",
            profile.to_str().unwrap(),
            "--p12-password-file",
            password.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json["format"], "mobileconfig");
    let payloads = pkcs12_payloads(&profile, &state)?;
    assert_eq!(payloads.len(), 2);
    for p12 in &payloads {
        let text = openssl_info(p12, &password);
        assert!(text.contains("pbeWithSHA1And3-KeyTripleDES-CBC"), "{text}");
    }
    Ok(())
}

/// The PKCS#12 payloads of an Apple configuration profile, as Python's plistlib reads it,
/// written to files; checks the profile's own keys on the way.
fn pkcs12_payloads(profile: &Path, dir: &Path) -> TestResult<Vec<PathBuf>> {
    let script = r#"
import json, plistlib, sys
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f)
out = []
for i, c in enumerate(p["PayloadContent"]):
    name = "%s/payload-%d.p12" % (sys.argv[2], i)
    with open(name, "wb") as f:
        f.write(c["PayloadContent"])
    out.append({k: v for k, v in c.items() if k != "PayloadContent"} | {"file": name})
print(json.dumps({k: v for k, v in p.items() if k != "PayloadContent"} | {"payloads": out}))
"#;
    let out = tool(
        "python3",
        &[
            "-c",
            script,
            profile.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    let text = ok(&out, "python3 plistlib");
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {text}"))?;
    assert_eq!(json["PayloadType"], "Configuration", "{json}");
    assert_eq!(json["PayloadVersion"], 1);
    let uuid = json["PayloadUUID"].as_str().expect("a UUID");
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert!(
        json["PayloadIdentifier"]
            .as_str()
            .is_some_and(|id| id.contains(uuid))
    );
    assert!(
        json["PayloadDisplayName"]
            .as_str()
            .is_some_and(|n| n.contains("@example.test"))
    );
    let mut files = Vec::new();
    for payload in json["payloads"].as_array().expect("payloads") {
        assert_eq!(
            payload["PayloadType"], "com.apple.security.pkcs12",
            "{payload}"
        );
        assert_eq!(payload["PayloadVersion"], 1);
        assert!(
            payload["PayloadCertificateFileName"]
                .as_str()
                .is_some_and(|name| name.contains("@example.test") && name.ends_with(".p12")),
            "{payload}"
        );
        assert_ne!(payload["PayloadUUID"], json["PayloadUUID"]);
        assert_eq!(
            payload.get("Password"),
            None,
            "the password is not in the profile"
        );
        files.push(PathBuf::from(payload["file"].as_str().unwrap()));
    }
    Ok(files)
}

fn openssl_info(p12: &Path, password: &Path) -> String {
    ok(
        &tool(
            "openssl",
            &[
                "pkcs12",
                "-info",
                "-nokeys",
                "-in",
                p12.to_str().unwrap(),
                "-passin",
                &format!("file:{}", password.display()),
            ],
        ),
        "openssl pkcs12 -info",
    )
}

#[test]
fn mobileconfig_and_the_instructions_after_obtain() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff93@example.test";
    let state = state_dir("install-mobileconfig");
    let home = state.join("home");
    // obtain in words: the instructions follow.
    let args: Vec<OsString> = obtain_args(&tb, mailbox, &state, &["--key-type", "p256"])
        .into_iter()
        .filter(|a| a != "--json")
        .collect();
    let out = {
        let _ca = ca_lock();
        command(args).output()?
    };
    let text = ok(&out, "obtain");
    for expected in [
        &format!("smime-acme install {mailbox} --thunderbird") as &str,
        "security import ",
        "-k ~/Library/Keychains/login.keychain-db -f pkcs12",
        "certutil -user -importpfx ",
        "gpgsm --import ",
        "--format mobileconfig",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    let (out, _) = cli(&state, &home, &["show", mailbox]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("certutil -user -importpfx "));
    let (out, json) = cli(&state, &home, &["show", mailbox, "--json"]);
    assert_eq!(code(&out), 0);
    assert!(json.is_object() && !String::from_utf8_lossy(&out.stdout).contains("importpfx"));

    // As the instructions say: --out a bare file name, in the current folder.
    let profile = state.join("phone.mobileconfig");
    let out = command(
        [
            "export",
            mailbox,
            "--format",
            "mobileconfig",
            "--out",
            "phone.mobileconfig",
            "--json",
            "--state-dir",
            state.to_str().unwrap(),
        ]
        .map(OsString::from)
        .to_vec(),
    )
    .current_dir(&state)
    .output()?;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // No password given and no terminal: one was generated beside the profile.
    let password = state.join(
        json["files"]["p12_password"]
            .as_str()
            .expect("a password file"),
    );
    let xml = std::fs::read_to_string(&profile)?;
    let secret = std::fs::read_to_string(&password)?;
    assert!(
        !xml.contains(secret.trim()),
        "the password is not in the profile"
    );
    let payloads = pkcs12_payloads(&profile, &state)?;
    assert_eq!(payloads.len(), 1);
    let info = openssl_info(&payloads[0], &password);
    assert!(info.contains("pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
    let folder = state.join("certs").join(mailbox);
    let current = std::fs::read_to_string(folder.join("current"))?;
    let dir = folder.join(current.trim());
    let leaf = std::fs::read_to_string(dir.join("cert.pem"))?;
    let chain = std::fs::read_to_string(dir.join("chain.pem"))?;
    assert!(
        info.contains(leaf.trim()),
        "the leaf is in the payload: {info}"
    );
    assert!(
        info.contains(chain.trim()),
        "the intermediate is in the payload: {info}"
    );
    Ok(())
}

/// A home folder with Thunderbird's profiles.ini naming two profiles, each with an NSS
/// database; the [Install…] section makes `second` the default. Their folders.
fn thunderbird_home(home: &Path) -> (PathBuf, PathBuf) {
    let base = home.join(".thunderbird");
    let (first, second) = (base.join("aaaa.first"), base.join("bbbb.second"));
    new_db(&first);
    new_db(&second);
    std::fs::write(
        base.join("profiles.ini"),
        "[Profile1]\nName=first\nIsRelative=1\nPath=aaaa.first\nDefault=1\n\n\
         [Profile0]\nName=second\nIsRelative=1\nPath=bbbb.second\n\n\
         [Install4F96D1932A9F858E]\nDefault=bbbb.second\nLocked=1\n\n\
         [General]\nStartWithLastProfile=1\nVersion=2\n",
    )
    .unwrap();
    (first, second)
}

fn sql(dir: &Path) -> String {
    format!("sql:{}", dir.display())
}

#[test]
fn thunderbird_profiles_and_the_profile_lock() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff92@example.test";
    let state = state_dir("install-thunderbird");
    let home = state.join("home");
    obtain(&tb, mailbox, &state);
    let (first, second) = thunderbird_home(&home);

    // Thunderbird runs (its lock names this live process): status 4, nothing imported.
    let lock = second.join("lock");
    std::os::unix::fs::symlink(format!("127.0.0.1:+{}", std::process::id()), &lock)?;
    let (out, json) = cli(
        &state,
        &home,
        &["install", mailbox, "--thunderbird", "--json"],
    );
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(json["error"], "locked", "{json}");
    assert!(
        stderr(&out).contains("close Thunderbird"),
        "{}",
        stderr(&out)
    );
    assert!(keys(&sql(&second)).is_empty(), "nothing imported");
    assert_no_leftovers(&home);

    // A lock left by a Thunderbird that is gone (no process can have a PID above 2^22).
    std::fs::remove_file(&lock)?;
    std::os::unix::fs::symlink("127.0.0.1:+4194305", &lock)?;
    let (out, json) = cli(
        &state,
        &home,
        &["install", mailbox, "--thunderbird", "--json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json["target"], "thunderbird");
    assert_eq!(
        json["profile"],
        second.to_str().unwrap(),
        "the [Install] default"
    );
    assert_eq!(keys(&sql(&second)).len(), 1);
    assert!(keys(&sql(&first)).is_empty(), "only the default profile");

    // A process holding an fcntl lock on .parentlock (as Thunderbird does, also from a Flatpak
    // or Snap sandbox whose PIDs are not ours): status 4.
    let parent_lock = first.join(".parentlock");
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import fcntl, sys, time\nf = open(sys.argv[1], 'w')\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)",
            parent_lock.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install the testbed tools with `sudo tests/testbed/install`"));
    let mut line = String::new();
    let read = holder
        .stdout
        .take()
        .map(|stdout| BufReader::new(stdout).read_line(&mut line));
    let (out, _) = cli(
        &state,
        &home,
        &["install", mailbox, "--thunderbird", "--profile", "first"],
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        matches!(read, Some(Ok(_))) && line.trim() == "held",
        "the lock holder did not start: {read:?} {line:?}"
    );
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(keys(&sql(&first)).is_empty(), "nothing imported");
    // Released: --profile by name picks the first profile.
    let (out, json) = cli(
        &state,
        &home,
        &[
            "install",
            mailbox,
            "--thunderbird",
            "--profile",
            "first",
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json["profile"], first.to_str().unwrap());
    assert_eq!(keys(&sql(&first)).len(), 1);

    // Two profiles and no way to tell the default: an error naming both.
    std::fs::write(
        home.join(".thunderbird/profiles.ini"),
        "[Profile1]\nName=first\nPath=aaaa.first\n[Profile0]\nName=second\nPath=bbbb.second\n",
    )?;
    let (out, _) = cli(&state, &home, &["install", mailbox, "--thunderbird"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--profile") && err.contains("aaaa.first") && err.contains("bbbb.second"),
        "{err}"
    );

    // A Flatpak Thunderbird's home is found too.
    std::fs::remove_dir_all(home.join(".thunderbird"))?;
    let flatpak = home.join(".var/app/org.mozilla.Thunderbird/.thunderbird");
    new_db(&flatpak.join("cccc.default"));
    std::fs::write(
        flatpak.join("profiles.ini"),
        "[Profile0]\nName=default\nIsRelative=1\nPath=cccc.default\nDefault=1\n",
    )?;
    let (out, json) = cli(
        &state,
        &home,
        &["install", mailbox, "--thunderbird", "--json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        json["profile"],
        flatpak.join("cccc.default").to_str().unwrap()
    );
    assert_eq!(keys(&sql(&flatpak.join("cccc.default"))).len(), 1);
    Ok(())
}

#[test]
fn an_ed25519_key_nss_cannot_import_is_explained() -> TestResult {
    let tb = Testbed::get();
    let mailbox = "staff94@example.test";
    let state = state_dir("install-ed25519");
    let home = state.join("home");
    let out = {
        let _ca = ca_lock();
        command(obtain_args(
            &tb,
            mailbox,
            &state,
            &["--key-type", "ed25519", "--usage", "sign"],
        ))
        .output()?
    };
    ok(&out, "obtain ed25519");
    let dir = state.join("nssdb");
    let db = new_db(&dir);
    let (out, _) = cli(
        &state,
        &home,
        &["install", mailbox, "--nss-db", dir.to_str().unwrap()],
    );
    assert_no_leftovers(&home);
    if code(&out) == 0 {
        // An NSS that imports Ed25519 keys.
        assert_eq!(keys(&db).len(), 1);
    } else {
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("Ed25519") && err.contains("--key-type"),
            "{err}"
        );
        assert!(keys(&db).is_empty());
    }
    Ok(())
}

/// Runs the shell command `cmdline` on a pseudo-terminal (util-linux `script`), typing `input`
/// once the program had time to ask; HOME and the temporary folder as for [`cli`].
fn on_a_terminal(home: &Path, cmdline: &str, input: &str) -> Output {
    use std::io::Write as _;
    let mut cmd = Command::new("script");
    for (key, _) in std::env::vars() {
        if key.starts_with("SMIME_ACME_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .args(["-qec", cmdline, "/dev/null"])
        .env("HOME", home)
        .env("TMPDIR", home.join("tmp"))
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run script ({e}): install the testbed tools with `sudo tests/testbed/install`")
        });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("script runs")
}
