//! token-part1 from a challenge mail's subject, then everything built from it: the joined
//! token in both join modes, the key authorization, the digest and the reply mail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smime_acme::challenge::mail::{self, ChallengeMail, Rejection};
use smime_acme::challenge::response::{self, Reply, TokenJoin};

/// token-part2 and the account key thumbprint of the RFC 8823 / RFC 7515 examples.
const PART2: &str = "DGyRejmCefe7v4NfDGDKfA";
const THUMBPRINT: &str = "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U";

fuzz_target!(|data: &[u8]| {
    let subject = String::from_utf8_lossy(data);
    let token = match mail::token_from_subject(&subject) {
        Ok(token) => token,
        Err(rejection) => {
            let _ = rejection.to_string();
            return;
        }
    };
    // An accepted token is base64url, whitespace-free and found again in its own subject.
    assert!(!token.is_empty() && token.is_ascii());
    assert!(!token.contains(char::is_whitespace));
    assert!(response::decode_lenient(&token).is_some_and(|b| b.len() >= 16));
    assert_eq!(
        mail::token_from_subject(&format!("ACME: {token}")),
        Ok(token.clone())
    );

    let by_string =
        response::join_tokens(&token, PART2, TokenJoin::String).expect("string join never fails");
    let by_bytes = response::join_tokens(&token, PART2, TokenJoin::Bytes)
        .expect("an accepted token-part1 is base64url");
    if response::join_modes_agree(&token) {
        assert_eq!(by_string, by_bytes);
    }
    for joined in [&by_string, &by_bytes] {
        let key_authorization = response::key_authorization(joined, THUMBPRINT);
        let digest = response::response_digest(&key_authorization);
        assert_eq!(digest.len(), 43);
        let reply = Reply {
            from: "alice@example.test",
            to: "acme@ca.test",
            token_part1: &token,
            in_reply_to: "A2299BB.FF7788@ca.test",
            message_id: "r1.abc@example.test",
            date: "Sat, 28 Nov 2026 15:01:54 +0000",
            digest: &digest,
        }
        .to_bytes();
        // Our own reply, should it come back, is never taken for a challenge.
        let parsed = ChallengeMail::parse(&reply);
        assert_eq!(
            parsed.subject.as_deref().map(mail::token_from_subject),
            Some(Err(Rejection::IsReply))
        );
    }
});
