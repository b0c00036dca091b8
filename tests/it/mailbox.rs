//! The IMAP adapter against the testbed's Dovecot: only mail after the mark counts, each new
//! mail's headers are read once, any watched folder is read, oversized mail is skipped, and
//! `\Seen` is set.

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
        None,
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

    let batch = mailbox.new_headers("Junk", mark)?;
    assert!(!batch.validity_changed);
    assert_eq!(batch.mails.len(), 1, "exactly the one new, small mail");
    let (uid, header) = &batch.mails[0];
    assert!(String::from_utf8_lossy(header).contains(&after));
    assert!(
        !String::from_utf8_lossy(header).contains("A testbed message"),
        "headers only"
    );
    let whole = mailbox.message("Junk", *uid)?.expect("the whole mail");
    assert!(whole.len() > header.len() && whole.starts_with(header));
    assert!(
        mailbox.new_headers("Junk", batch.next)?.mails.is_empty(),
        "a mail is read once"
    );
    let huge_uid = batch.next.uid_next - 1;
    assert!(mailbox.message("Junk", huge_uid)?.is_none(), "too large");
    let inbox = mailbox.mark("INBOX")?;
    assert!(
        mailbox.new_headers("INBOX", inbox)?.mails.is_empty(),
        "nothing new in INBOX"
    );
    let renumbered = smime_acme::mail::imap::Mark {
        uid_validity: mark.uid_validity.wrapping_add(1),
        uid_next: mark.uid_next,
    };
    let all = mailbox.new_headers("Junk", renumbered)?;
    assert!(all.validity_changed, "another UIDVALIDITY");
    assert!(all.mails.len() >= 2, "then every small mail counts");

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
