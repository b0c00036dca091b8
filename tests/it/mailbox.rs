//! The IMAP adapter against the testbed's Dovecot: only mail after the mark counts, any watched
//! folder is read, oversized mail is skipped, and `\Seen` is set.

use smime_acme::mail::Security;
use smime_acme::mail::imap::Mailbox;

use crate::testbed::{TestResult, Testbed, imap_login, marker, message};

#[test]
fn new_mail_in_a_watched_folder_is_found_and_older_mail_is_not() -> TestResult {
    let tb = Testbed::get();
    let bob = "bob@example.test";
    let mut appender = imap_login(&tb, bob)?;
    let before = marker("before-mark");
    appender
        .append("Junk", &message(bob, bob, &before, ""))
        .finish()?;

    let mut mailbox = Mailbox::open(
        &tb.server("TESTBED_IMAPS"),
        Security::Tls,
        tb.tls(true),
        bob,
        &tb.password(bob),
    )?;
    let mark = mailbox.mark("Junk")?;
    let after = marker("after-mark");
    appender
        .append("Junk", &message(bob, bob, &after, ""))
        .finish()?;
    let mut huge = message(bob, bob, &marker("huge"), "");
    huge.extend(std::iter::repeat_n(b'x', 300 * 1024));
    huge.extend(b"\r\n");
    appender.append("Junk", &huge).finish()?;

    let found = mailbox.fetch_new("Junk", mark)?;
    assert_eq!(found.len(), 1, "exactly the one new, small mail");
    let (uid, raw) = &found[0];
    assert!(String::from_utf8_lossy(raw).contains(&after));
    let inbox = mailbox.mark("INBOX")?;
    assert!(
        mailbox.fetch_new("INBOX", inbox)?.is_empty(),
        "nothing new in INBOX"
    );

    mailbox.mark_seen("Junk", *uid)?;
    appender.select("Junk")?;
    let flags = appender.uid_fetch(uid.to_string(), "FLAGS")?;
    assert!(
        flags.iter().any(|f| f
            .flags()
            .iter()
            .any(|fl| matches!(fl, ::imap::types::Flag::Seen))),
        "\\Seen set"
    );
    mailbox.logout();
    appender.logout()?;
    Ok(())
}
