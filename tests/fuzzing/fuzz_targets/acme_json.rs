//! Bodies an ACME server sends: the directory, accounts, orders, authorizations, challenges,
//! problem documents and RFC 9773 renewal information, read as the client reads them and then
//! shown or used.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smime_acme::acme::types::{
    Account, Authorization, Challenge, Directory, Identifier, Order, Problem, Status,
};
use smime_acme::clock;

fn show_problem(problem: &Problem) {
    let text = problem.to_string();
    let kind = problem.short_kind();
    assert!(problem.is(kind));
    assert!(text.contains(kind));
}

fn show_challenge(challenge: &Challenge) {
    let _ = challenge.status.to_string();
    if let Some(problem) = &challenge.error {
        show_problem(problem);
    }
}

fn expires(text: Option<&str>) {
    if let Some(at) = text.and_then(clock::parse_rfc3339) {
        let _ = clock::rfc3339(at);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(problem) = serde_json::from_slice::<Problem>(data) {
        show_problem(&problem);
    }
    if let Ok(order) = serde_json::from_slice::<Order>(data) {
        let _ = order.status.to_string();
        expires(order.expires.as_deref());
        if let Some(problem) = &order.error {
            show_problem(problem);
        }
    }
    if let Ok(authorization) = serde_json::from_slice::<Authorization>(data) {
        let _ = authorization.status.to_string();
        expires(authorization.expires.as_deref());
        if let Some(challenge) = authorization.email_reply() {
            assert_eq!(challenge.kind, "email-reply-00");
        }
        authorization.challenges.iter().for_each(show_challenge);
    }
    if let Ok(challenge) = serde_json::from_slice::<Challenge>(data) {
        show_challenge(&challenge);
    }
    if let Ok(account) = serde_json::from_slice::<Account>(data) {
        let _ = account.status.to_string();
    }
    if let Ok(directory) = serde_json::from_slice::<Directory>(data) {
        let _ = directory.meta.external_account_required;
    }
    if let Ok(identifier) = serde_json::from_slice::<Identifier>(data) {
        let _ = identifier.value.len();
    }
    if let Ok(status) = serde_json::from_slice::<Status>(data) {
        let _ = status.to_string();
    }
    // renewalInfo, read field by field as `renew` does.
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        let window = &body["suggestedWindow"];
        for field in ["start", "end"] {
            expires(window[field].as_str());
        }
    }
});
