//! A candidate challenge mail, as read from the mailbox: parsed, then judged under each
//! authenticity policy. Nothing may panic, and the judges must agree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smime_acme::challenge::authenticity::{ChallengeAuth, DkimCheck};
use smime_acme::challenge::mail::{self, ChallengeMail, Expected};

const EXPECTED: Expected<'static> = Expected {
    email: "alice@example.test",
    from: "acme@ca.test",
};

fn dkim(pass: bool, domain: &str, headers: &[&str]) -> DkimCheck {
    DkimCheck {
        pass,
        domain: domain.into(),
        algorithm: "RsaSha256".into(),
        signed_headers: headers.iter().map(|h| (*h).to_owned()).collect(),
        detail: if pass {
            String::new()
        } else {
            "signature mismatch".into()
        },
        temporary: false,
    }
}

const COVERED: [&str; 7] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "Reply-To",
];

fuzz_target!(|data: &[u8]| {
    let parsed = ChallengeMail::parse(data);
    let headers = mail::judge_headers(&parsed, EXPECTED);

    // Whatever is accepted must be safe to copy into the reply's headers.
    if let Ok(accepted) = &headers {
        assert!(mail::is_plain_address(&accepted.reply_to));
        assert!(mail::token_from_subject(&format!("ACME: {}", accepted.token_part1)).is_ok());
    }

    let authentication_results = ChallengeAuth::AuthenticationResults("mx.example.test".into());
    let by_ar = mail::judge(&parsed, EXPECTED, &authentication_results, &[]);

    let passing = [dkim(true, "ca.test", &COVERED)];
    let by_dkim = mail::judge(&parsed, EXPECTED, &ChallengeAuth::Dkim, &passing);
    let mixed = [
        dkim(false, "ca.test", &COVERED),
        dkim(true, "evil.test", &COVERED),
        dkim(true, "CA.TEST", &["from", "subject"]),
    ];
    let by_bad_dkim = mail::judge(&parsed, EXPECTED, &ChallengeAuth::Dkim, &mixed);
    let unsigned = mail::judge(&parsed, EXPECTED, &ChallengeAuth::Dkim, &[]);
    let by_none = mail::judge(&parsed, EXPECTED, &ChallengeAuth::None, &[]);

    // Authenticity only ever takes away: every verdict that accepts accepts exactly what the
    // header rules accept, and missing or unsuitable signatures never pass.
    for verdict in [&by_ar, &by_dkim, &by_none] {
        if let Ok(accepted) = verdict {
            assert_eq!(headers.as_ref().ok(), Some(accepted));
        }
    }
    assert!(by_bad_dkim.is_err());
    assert!(unsigned.is_err());

    // The rejection reasons are shown to the user.
    for verdict in [headers, by_ar, by_dkim, by_bad_dkim, unsigned, by_none] {
        if let Err(rejection) = verdict {
            let _ = rejection.to_string();
        }
    }
});
